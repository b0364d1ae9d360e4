// Package vsockrpc is the protocol between attestd and its callers: length-prefixed CBOR frames
// over vsock (or unix and loopback TCP sockets for development), a Server with limits, and a Client.
//
// The wire format is specified in docs/protocol.md. In short: a frame is a 4-byte big-endian
// length and one CBOR item; a request is {v, id, method, params}; a response is {v, id, result} or
// {v, id, error: {code, message}}. Decoding is strict (no duplicate keys, indefinite lengths, tags,
// unknown fields or trailing bytes) and every size is bounded before it is read.
//
// Two APIs exist. ParentAPI is what the untrusted parent instance may call: attest with a nonce and
// a key name (never a public_key or user_data of its choosing), describe and health. LocalAPI,
// served only inside the enclave, adds set_user_data, attest with user_data, random, and extend and
// lock of PCRs 16-31. The agent implements ParentService and LocalService; a Server answers one API:
//
//	l, err := vsockrpc.Listen("vsock://:5005")
//	srv := &vsockrpc.Server{API: vsockrpc.ParentAPI(agent), Logger: logger}
//	go srv.Serve(l)
//	...
//	srv.Shutdown(ctx) // on SIGTERM: stop accepting, finish requests in flight
//
// and a caller uses a Client:
//
//	c, err := vsockrpc.Dial(ctx, "vsock://16:5005")
//	res, err := c.Attest(ctx, nonce, "rsa")
package vsockrpc
