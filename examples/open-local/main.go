// Command open-local is the smallest in-enclave application that opens a
// secret sealed to attestd's keys: it sends the ciphertext to attestd's local
// API (`open`) and prints the plaintext. The parent API has no `open`, so only
// a process inside the enclave can do this.
//
//	open-local --addr unix:///run/attestd.sock --key hpke --in secret.sealed
//	open-local --addr unix:///run/attestd.sock --key rsa --oaep-hash sha1 --base64 < secret.b64
//
// The aad of an HPKE envelope, when there is one, goes to standard error.
// Exit status: 0 opened, 1 not opened (open_failed) or failed, 2 usage error.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("open-local", flag.ContinueOnError)
	addr := fs.String("addr", "unix:///run/attestd.sock", "attestd's local API `ADDR`")
	key := fs.String("key", "hpke", "the key the secret was sealed to: hpke or rsa")
	hash := fs.String("oaep-hash", "", "rsa only: the OAEP hash the sender used, sha256 (the default) or sha1")
	in := fs.String("in", "-", "read the sealed secret from `FILE` (-: standard input)")
	b64 := fs.Bool("base64", false, "the input is standard base64 text")
	usage := func(format string, a ...any) int {
		return cli.ReportUsage(stderr, "open-local", fmt.Errorf(format, a...))
	}
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, "usage: open-local [--addr ADDR] [--key hpke|rsa] [--oaep-hash sha256|sha1] [--in FILE|-] [--base64]\n\n"+
				"Opens a secret sealed to this enclave's key through attestd's local API and writes it to standard output.\n\nflags:\n")
			return 0
		}
		return usage("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *key != "hpke" && *key != "rsa":
		return usage("--key %q: want hpke or rsa", *key)
	case *hash != "" && *key != "rsa":
		return usage("--oaep-hash applies to --key rsa only")
	case *addr == "" || *in == "":
		return usage("--addr and --in must not be empty")
	}
	if *key == "rsa" && *hash == "" {
		*hash = seal.OAEPSHA256
	}
	r := stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return usage("--in: %v", err)
		}
		defer f.Close()
		r = f
	}
	// The largest envelope, as base64 text with a newline.
	data, err := io.ReadAll(io.LimitReader(r, int64(base64.StdEncoding.EncodedLen(seal.MaxEnvelope))+2))
	if err != nil {
		fmt.Fprintf(stderr, "open-local: %v\n", err)
		return 1
	}
	if *b64 {
		if data, err = base64.StdEncoding.DecodeString(string(trimNewline(data))); err != nil {
			fmt.Fprintf(stderr, "open-local: input is not base64: %v\n", err)
			return 1
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vsockrpc.Dial(ctx, *addr)
	if err != nil {
		fmt.Fprintf(stderr, "open-local: %v\n", err)
		return 1
	}
	defer c.Close()
	res, err := c.Open(ctx, vsockrpc.OpenRequest{Key: *key, Ciphertext: data, OAEPHash: *hash})
	if err != nil {
		fmt.Fprintf(stderr, "open-local: %v\n", err)
		return 1
	}
	if len(res.AAD) > 0 {
		fmt.Fprintf(stderr, "aad: %q\n", res.AAD)
	}
	if _, err := stdout.Write(res.Plaintext); err != nil {
		return 1
	}
	return 0
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
