package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// hexJSON decodes a JSON hex string (or null), as attest prints every byte string.
type hexJSON []byte

func (h *hexJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func isHexString(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && s != ""
}

// jsonErrorOf decodes the one JSON error object a command run with --json
// prints on stdout when it fails, strictly.
func jsonErrorOf(t *testing.T, stdout string) jsonErrorField {
	t.Helper()
	var j struct {
		Error *jsonErrorField `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Error == nil || dec.More() {
		t.Fatalf("stdout is not one JSON error object (%v): %q", err, stdout)
	}
	return *j.Error
}
