package mocknsm

import (
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

// Device returns an in-process nsm.Device backed by n, for nsm.Open(nsm.Options{Device: n.Device()}). It does
// what hf/nsm's Session does around the ioctl, with Process in place of the ioctl: the request is encoded exactly
// as hf/nsm encodes it, an errno becomes *hfnsm.ErrorIoctlFailed (so the nsm package reports *nsm.IoctlError), and
// the response is decoded into hf/nsm's response.Response. Close does nothing; n stays usable.
func (n *NSM) Device() nsm.Device { return device{n} }

type device struct{ n *NSM }

func (d device) Send(req request.Request) (response.Response, error) {
	b, err := cbor.Marshal(req.Encoded())
	if err != nil {
		return response.Response{}, err
	}
	out, errno := d.n.Process(b)
	if errno != 0 {
		return response.Response{}, &hfnsm.ErrorIoctlFailed{Errno: errno}
	}
	var r response.Response
	if err := cbor.Unmarshal(out, &r); err != nil {
		return response.Response{}, err
	}
	return r, nil
}

func (device) Close() error { return nil }
