package mocknsm

import (
	"syscall"
	"testing"

	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	"github.com/hf/nsm/response"
)

// FuzzProcess feeds arbitrary requests to the software NSM. It must never panic; a request over 4096 bytes fails
// the ioctl with EMSGSIZE; any other request gets a response that hf/nsm's response type decodes into exactly one
// variant. The seed corpus (testdata/fuzz/FuzzProcess) holds every request form of nitro-specs §4.3 and
// malformed variations.
func FuzzProcess(f *testing.F) {
	n, _ := newTestNSMShared(f)
	f.Fuzz(func(t *testing.T, req []byte) {
		resp, errno := n.Process(req)
		if len(req) > nsm.MaxRequestSize {
			if errno != syscall.EMSGSIZE || resp != nil {
				t.Fatalf("oversized request: %x, %v", resp, errno)
			}
			return
		}
		if errno != 0 {
			t.Fatalf("errno %v without faults", errno)
		}
		var r response.Response
		if err := cbor.Unmarshal(resp, &r); err != nil {
			t.Fatalf("response %x does not decode: %v", resp, err)
		}
		if v := variant(r); v == "" || len(resp) > nsm.MaxResponseSize {
			t.Fatalf("response %x: variant %q, %d bytes", resp, v, len(resp))
		}
	})
}
