package vsockrpc

import (
	"maps"
	"slices"

	"github.com/attestd/attestd/internal/strictcbor"
)

// Encoding. Every message is written by hand with internal/strictcbor, in RFC 8949 core deterministic
// encoding: shortest forms, definite lengths, no tags, and map keys in bytewise order of their
// encodings (for text keys: shorter first, then alphabetical). Each appendCBOR below lists its keys in
// that order. A nil byte string is written empty, a nil list or map as an empty one, a nil id as null;
// fields marked optional in docs/protocol.md are left out when empty. The tests check every type
// byte for byte against fxamacker's encoder in the same mode, and the fuzz targets check that what
// decode.go accepts re-encodes the same way.

// encoder is implemented by every message, params and result type.
type encoder interface {
	appendCBOR(b []byte) []byte
}

func appendMap(b []byte, pairs int) []byte {
	return strictcbor.AppendHead(b, strictcbor.Map, uint64(pairs))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, strictcbor.True)
	}
	return append(b, strictcbor.False)
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return strictcbor.AppendHead(b, strictcbor.Nint, uint64(-(v + 1)))
	}
	return strictcbor.AppendUint(b, uint64(v))
}

// pairs counts the fields of a map that are written: n always-present ones plus each optional one that
// is set.
func pairs(n int, optional ...bool) int {
	for _, set := range optional {
		if set {
			n++
		}
	}
	return n
}

// Envelopes.

func (r wireRequest) appendCBOR(b []byte) []byte {
	b = appendMap(b, 4)
	b = strictcbor.AppendUint(strictcbor.AppendText(b, "v"), r.V)
	b = strictcbor.AppendUint(strictcbor.AppendText(b, "id"), r.ID)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "method"), r.Method)
	return r.Params.appendCBOR(strictcbor.AppendText(b, "params"))
}

func (r response) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(2, r.Error != nil, r.Result != nil))
	b = strictcbor.AppendUint(strictcbor.AppendText(b, "v"), r.V)
	b = strictcbor.AppendText(b, "id")
	if r.ID == nil {
		b = append(b, strictcbor.Null)
	} else {
		b = strictcbor.AppendUint(b, *r.ID)
	}
	if r.Error != nil {
		b = r.Error.appendCBOR(strictcbor.AppendText(b, "error"))
	}
	if r.Result != nil {
		b = r.Result.appendCBOR(strictcbor.AppendText(b, "result"))
	}
	return b
}

func (e *Error) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(2, e.NSMCode != ""))
	b = strictcbor.AppendText(strictcbor.AppendText(b, "code"), e.Code)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "message"), e.Message)
	if e.NSMCode != "" {
		b = strictcbor.AppendText(strictcbor.AppendText(b, "nsm_code"), e.NSMCode)
	}
	return b
}

// Params.

func (p attestParams) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(1, len(p.Nonce) > 0, len(p.UserData) > 0))
	b = strictcbor.AppendText(strictcbor.AppendText(b, "key"), p.Key)
	if len(p.Nonce) > 0 {
		b = strictcbor.AppendBytes(strictcbor.AppendText(b, "nonce"), p.Nonce)
	}
	if len(p.UserData) > 0 {
		b = strictcbor.AppendBytes(strictcbor.AppendText(b, "user_data"), p.UserData)
	}
	return b
}

func (p userDataParams) appendCBOR(b []byte) []byte {
	return strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 1), "user_data"), p.UserData)
}

func (p randomParams) appendCBOR(b []byte) []byte {
	return strictcbor.AppendUint(strictcbor.AppendText(appendMap(b, 1), "n"), p.N)
}

func (p extendParams) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 2), "data"), p.Data)
	return strictcbor.AppendUint(strictcbor.AppendText(b, "index"), p.Index)
}

func (p lockParams) appendCBOR(b []byte) []byte {
	return strictcbor.AppendUint(strictcbor.AppendText(appendMap(b, 1), "index"), p.Index)
}

func (noParams) appendCBOR(b []byte) []byte { return appendMap(b, 0) }

// Results.

func (r *AttestResult) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendText(strictcbor.AppendText(appendMap(b, 3), "key"), r.Key)
	b = strictcbor.AppendBytes(strictcbor.AppendText(b, "document"), r.Document)
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "public_key"), r.PublicKey)
}

func (h *Health) appendCBOR(b []byte) []byte {
	b = h.Attest.appendCBOR(strictcbor.AppendText(appendMap(b, 2), "attest"))
	return strictcbor.AppendText(strictcbor.AppendText(b, "status"), h.Status)
}

func (a *AttestHealth) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendUint(strictcbor.AppendText(appendMap(b, 6), "failed"), a.Failed)
	b = strictcbor.AppendUint(strictcbor.AppendText(b, "succeeded"), a.Succeeded)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "last_error"), a.LastError)
	b = appendInt(strictcbor.AppendText(b, "last_failure"), a.LastFailure)
	b = appendInt(strictcbor.AppendText(b, "last_success"), a.LastSuccess)
	return strictcbor.AppendUint(strictcbor.AppendText(b, "consecutive_failures"), a.ConsecutiveFailures)
}

func (r randomResult) appendCBOR(b []byte) []byte {
	return strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 1), "random"), r.Random)
}

func (r extendResult) appendCBOR(b []byte) []byte {
	return strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 1), "value"), r.Value)
}

func (emptyResult) appendCBOR(b []byte) []byte { return appendMap(b, 0) }

func (d *Description) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendText(appendMap(b, 7), "keys")
	b = strictcbor.AppendHead(b, strictcbor.Array, uint64(len(d.Keys)))
	for i := range d.Keys {
		b = d.Keys[i].appendCBOR(b)
	}
	b = strictcbor.AppendText(b, "pcrs")
	b = strictcbor.AppendHead(b, strictcbor.Map, uint64(len(d.PCRs)))
	for _, i := range slices.Sorted(maps.Keys(d.PCRs)) { // ascending integers are in encoding order
		b = strictcbor.AppendBytes(strictcbor.AppendUint(b, uint64(i)), d.PCRs[i])
	}
	b = d.Nonce.appendCBOR(strictcbor.AppendText(b, "nonce"))
	b = d.Entropy.appendCBOR(strictcbor.AppendText(b, "entropy"))
	b = d.Platform.appendCBOR(strictcbor.AppendText(b, "platform"))
	b = strictcbor.AppendText(strictcbor.AppendText(b, "module_id"), d.ModuleID)
	return strictcbor.AppendText(strictcbor.AppendText(b, "agent_version"), d.AgentVersion)
}

func (k *KeyInfo) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendText(strictcbor.AppendText(appendMap(b, 4), "name"), k.Name)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "binding"), k.Binding)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "algorithm"), k.Algorithm)
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "public_key"), k.PublicKey)
}

func (n *NonceLimits) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendUint(strictcbor.AppendText(appendMap(b, 3), "max"), n.Max)
	b = strictcbor.AppendUint(strictcbor.AppendText(b, "min"), n.Min)
	return appendBool(strictcbor.AppendText(b, "required"), n.Required)
}

func (e *Entropy) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendText(strictcbor.AppendText(appendMap(b, 4), "source"), e.Source)
	b = strictcbor.AppendText(strictcbor.AppendText(b, "kernel_pool"), e.KernelPool)
	b = appendInt(strictcbor.AppendText(b, "last_reseed"), e.LastReseed)
	return strictcbor.AppendUint(strictcbor.AppendText(b, "seeded_bytes"), e.SeededBytes)
}

func (p *Platform) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendText(appendMap(b, 3), "relaxed")
	b = strictcbor.AppendHead(b, strictcbor.Array, uint64(len(p.Relaxed)))
	for _, g := range p.Relaxed {
		b = strictcbor.AppendText(b, g)
	}
	b = strictcbor.AppendText(strictcbor.AppendText(b, "clock_source"), p.ClockSource)
	return strictcbor.AppendText(strictcbor.AppendText(b, "kernel_release"), p.KernelRelease)
}
