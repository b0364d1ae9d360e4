package vsockrpc

import (
	"context"
	"errors"
)

// Method names.
const (
	MethodAttest      = "attest"
	MethodDescribe    = "describe"
	MethodHealth      = "health"
	MethodSetUserData = "set_user_data"
	MethodRandom      = "random"
	MethodExtendPCR   = "extend_pcr"
	MethodLockPCR     = "lock_pcr"
)

// API is the set of methods a Server answers. Build one with ParentAPI or LocalAPI: which methods
// exist is fixed by the constructor, never by what the service value happens to implement, so
// serving the agent on the parent listener cannot expose local methods.
type API struct {
	local   bool
	methods map[string]method
}

// method decodes and checks a request's params, then calls the service.
type method struct {
	decode func(params []byte) (any, *Error)
	call   func(ctx context.Context, params any) (encoder, error)
	// quick marks a method that never waits on the NSM (describe, health, set_user_data): the
	// Server runs it in its own slots, so it never queues behind requests waiting for the NSM.
	// A method is NSM-bound unless marked.
	quick bool
}

// ParentAPI returns the parent API (attest, describe, health) answered by svc. attest accepts only
// nonce and key: a request setting public_key or user_data gets CodeForbiddenField.
func ParentAPI(svc ParentService) *API {
	a := &API{methods: map[string]method{}}
	a.addCommon(svc)
	a.methods[MethodAttest] = method{
		decode: func(raw []byte) (any, *Error) { return decodeAttest(raw, false) },
		call: func(ctx context.Context, p any) (encoder, error) {
			ap := p.(attestParams)
			return checkAttest(svc.Attest(ctx, AttestRequest{Nonce: ap.Nonce, Key: ap.Key}))
		},
	}
	return a
}

// LocalAPI returns the local API answered by svc: the parent API, with attest also accepting
// user_data, plus set_user_data, random, extend_pcr and lock_pcr. Serve it only inside the enclave
// (for example on a unix socket made by Listen, mode 0600).
func LocalAPI(svc LocalService) *API {
	a := &API{local: true, methods: map[string]method{}}
	a.addCommon(svc)
	a.methods[MethodAttest] = method{
		decode: func(raw []byte) (any, *Error) { return decodeAttest(raw, true) },
		call: func(ctx context.Context, p any) (encoder, error) {
			ap := p.(attestParams)
			return checkAttest(svc.AttestLocal(ctx, LocalAttestRequest{
				AttestRequest: AttestRequest{Nonce: ap.Nonce, Key: ap.Key},
				UserData:      ap.UserData,
			}))
		},
	}
	a.methods[MethodSetUserData] = method{
		decode: func(raw []byte) (any, *Error) {
			var p userDataParams
			e := decodeParams(raw, []string{"public_key"}, field{"user_data", true, func(r []byte) (err error) {
				p.UserData, err = decodeBytes(r, MaxUserDataSize)
				return err
			}})
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			return emptyResult{}, svc.SetUserData(ctx, p.(userDataParams).UserData)
		},
		quick: true,
	}
	a.methods[MethodRandom] = method{
		decode: func(raw []byte) (any, *Error) {
			var p randomParams
			e := decodeParams(raw, nil, field{"n", true, func(r []byte) (err error) {
				if p.N, err = decodeUint(r); err != nil {
					return err
				}
				if p.N < 1 || p.N > MaxRandomSize {
					return Errorf(CodeBadRequest, "n: %d not in 1..%d", p.N, MaxRandomSize)
				}
				return nil
			}})
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			n := int(p.(randomParams).N)
			b, err := svc.Random(ctx, n)
			if err != nil {
				return nil, err
			}
			if len(b) != n {
				return nil, errors.New("vsockrpc: Random returned the wrong number of bytes")
			}
			return randomResult{Random: b}, nil
		},
	}
	a.methods[MethodExtendPCR] = method{
		decode: func(raw []byte) (any, *Error) {
			var p extendParams
			e := decodeParams(raw, nil,
				field{"index", true, func(r []byte) error { return decodePCRIndex(r, &p.Index) }},
				field{"data", true, func(r []byte) (err error) {
					if p.Data, err = decodeBytes(r, MaxExtendDataSize); err != nil {
						return err
					}
					if p.Data == nil {
						return errors.New("empty")
					}
					return nil
				}})
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			ep := p.(extendParams)
			v, err := svc.ExtendPCR(ctx, uint16(ep.Index), ep.Data)
			if err != nil {
				return nil, err
			}
			if len(v) == 0 {
				return nil, errors.New("vsockrpc: ExtendPCR returned no value")
			}
			return extendResult{Value: v}, nil
		},
	}
	a.methods[MethodLockPCR] = method{
		decode: func(raw []byte) (any, *Error) {
			var p lockParams
			e := decodeParams(raw, nil,
				field{"index", true, func(r []byte) error { return decodePCRIndex(r, &p.Index) }})
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			return emptyResult{}, svc.LockPCR(ctx, uint16(p.(lockParams).Index))
		},
	}
	a.addOpen(svc)
	a.addKMS(svc)
	a.addTLSKey(svc)
	return a
}

func (a *API) addCommon(svc ParentService) {
	none := func(raw []byte) (any, *Error) { return noParams{}, decodeParams(raw, nil) }
	a.methods[MethodDescribe] = method{
		decode: none,
		call: func(ctx context.Context, _ any) (encoder, error) {
			d, err := svc.Describe(ctx)
			if err == nil && d == nil {
				err = errors.New("vsockrpc: Describe returned nil")
			}
			return d, err
		},
		quick: true,
	}
	a.methods[MethodHealth] = method{
		decode: none,
		call: func(ctx context.Context, _ any) (encoder, error) {
			h, err := svc.Health(ctx)
			if err == nil && (h == nil || h.Status == "") {
				err = errors.New("vsockrpc: Health returned no status")
			}
			return h, err
		},
		quick: true,
	}
}

// decodeAttest decodes attest params. public_key is never settable; user_data only on the local API.
func decodeAttest(raw []byte, local bool) (any, *Error) {
	var p attestParams
	fields := []field{
		{"nonce", false, func(r []byte) (err error) {
			p.Nonce, err = decodeBytes(r, MaxNonceSize)
			if tl, ok := err.(errTooLong); ok {
				return Errorf(CodeNonceTooLarge, "nonce: %v", tl)
			}
			return err
		}},
		{"key", true, func(r []byte) (err error) {
			p.Key, err = decodeText(r, 1, MaxKeyNameSize)
			return err
		}},
	}
	forbidden := []string{"public_key", "user_data"}
	if local {
		forbidden = forbidden[:1]
		fields = append(fields, field{"user_data", false, func(r []byte) (err error) {
			p.UserData, err = decodeBytes(r, MaxUserDataSize)
			return err
		}})
	}
	e := decodeParams(raw, forbidden, fields...)
	return p, e
}

func decodePCRIndex(raw []byte, dst *uint64) (err error) {
	if *dst, err = decodeUint(raw); err != nil {
		return err
	}
	if *dst < MinUserPCR || *dst > MaxUserPCR {
		return Errorf(CodeBadRequest, "index: %d not in %d..%d", *dst, MinUserPCR, MaxUserPCR)
	}
	return nil
}

func checkAttest(r *AttestResult, err error) (encoder, error) {
	if err != nil {
		return nil, err
	}
	if r == nil || len(r.Document) == 0 || len(r.PublicKey) == 0 || r.Key == "" {
		return nil, errors.New("vsockrpc: Attest returned an incomplete result")
	}
	return r, nil
}
