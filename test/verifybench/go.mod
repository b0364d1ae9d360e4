module github.com/attestd/attestd/test/verifybench

go 1.26.8

require (
	github.com/attestd/attestd v0.0.0
	github.com/fxamacker/cbor/v2 v2.9.6
	github.com/hf/nitrite v0.0.0-20211104000856-f9e0dcc73703
)

require github.com/x448/float16 v0.8.4 // indirect

replace github.com/attestd/attestd => ../..
