// Command nsmclient is an unmodified NSM client for the nsm-run.sh test: it
// opens the default device /dev/nsm and prints, as JSON, the description, the
// length of one GetRandom answer and an attestation document for -nonce.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/attestd/attestd/nsm"
)

func main() {
	nonce := flag.String("nonce", "", "nonce (hex)")
	flag.Parse()
	if err := run(*nonce); err != nil {
		fmt.Fprintln(os.Stderr, "nsmclient:", err)
		os.Exit(1)
	}
}

func run(nonceHex string) error {
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil {
		return err
	}
	s, err := nsm.Open(nsm.Options{}) // nsm.DefaultPath
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	d, err := s.DescribeNSM(ctx)
	if err != nil {
		return err
	}
	r, err := s.GetRandom(ctx)
	if err != nil {
		return err
	}
	doc, err := s.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"module_id":   d.ModuleID,
		"random_len":  len(r),
		"document":    doc,
		"device_path": nsm.DefaultPath,
	})
}
