package main

import "testing"

// The CLI's own parsers of what users give it: a PCR policy (attest's or
// nitro-cli's JSON), DOC text, --public-key text. Seeds in testdata/fuzz/.

func FuzzPCRPolicy(f *testing.F) {
	f.Add([]byte(`{"pcrs": {"0": ["` + prodPCR0 + `"]}}`))
	f.Add([]byte(`{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "` + prodPCR0 + `", "PCR1": "` + prodPCR1 + `", "PCR2": "` + otherPCR + `"}, "EifVersion": 4}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePCRPolicy(data)
		if err != nil {
			return
		}
		if len(p) == 0 {
			t.Fatal("accepted an empty policy")
		}
		for idx, vals := range p {
			if idx < 0 || idx > 31 || len(vals) == 0 {
				t.Fatalf("PCR%d with %d values", idx, len(vals))
			}
			for _, v := range vals {
				if len(v) != 48 {
					t.Fatalf("PCR%d value of %d bytes", idx, len(v))
				}
			}
		}
	})
}

func FuzzDocumentText(f *testing.F) {
	f.Add([]byte("0x8444a1013822a0"))
	f.Add([]byte("hEShATgioA=="))
	f.Add([]byte("84 44 a1 01\n38 22"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDocumentText(data)
		if err != nil {
			return
		}
		if len(d) == 0 || (d[0] != 0x84 && d[0] != 0xd2) {
			t.Fatalf("accepted %x as a COSE_Sign1 document", d)
		}
		if len(d) > len(data) {
			t.Fatalf("decoded %d bytes from %d", len(d), len(data))
		}
	})
}

func FuzzKeyText(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("0x00ff"))
	f.Add([]byte{0, 1, 2, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := decodeKeyText(data)
		if err != nil {
			return
		}
		if len(k) == 0 || len(k) > len(data) {
			t.Fatalf("decoded %d bytes from %d: %q", len(k), len(data), data)
		}
	})
}
