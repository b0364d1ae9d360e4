package attestedtls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/attestd/attestd/attestation"
)

// TestOpenSSL: standard tools read what the server serves. openssl s_client
// completes the handshake (TLS 1.3, and TLS 1.2 with extended master secret),
// prints the certificate, whose id-pe-cmw extension openssl x509 parses as
// non-critical, and exports the keying material of the session binding; a
// document asked for on that connection with binding=tls-exporter commits to
// exactly openssl's exporter value.
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (scripts/ensure-tools.sh installs it)")
	}
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	v, err := attestation.NewVerifier(st.options())
	if err != nil {
		t.Fatal(err)
	}
	ekmLine := regexp.MustCompile(`Keying material: ([0-9A-Fa-f]{64})`)
	for _, version := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(version, func(t *testing.T) {
			nonce := bytes.Repeat([]byte{0x5a}, 32)
			cmd := exec.Command("openssl", "s_client", "-connect", addr, version, "-showcerts", "-ign_eof",
				"-keymatexport", ExporterLabel, "-keymatexportlen", "32")
			cmd.Stdin = strings.NewReader("GET " + WellKnownPath + "?nonce=" + hex.EncodeToString(nonce) +
				"&binding=tls-exporter HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("s_client: %v\n%s", err, out)
			}
			m := ekmLine.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no keying material in\n%s", out)
			}
			ekm, _ := hex.DecodeString(string(m[1]))
			i := bytes.Index(out, []byte(`{"attestation_doc"`))
			if i < 0 {
				t.Fatalf("no endpoint response in\n%s", out)
			}
			var r Response
			if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&r); err != nil {
				t.Fatal(err)
			}
			d, err := v.VerifyNonce(r.AttestationDoc, SessionNonce(ekm, nonce))
			if err != nil || !bytes.Equal(d.PublicKey, srv.PublicKey()) || r.Nonce != BindingTLSExporter {
				t.Fatalf("the document does not bind openssl's exporter: %v", err)
			}

			// The certificate, as openssl printed it, parsed by openssl x509.
			pemStart := bytes.Index(out, []byte("-----BEGIN CERTIFICATE-----"))
			pemEnd := bytes.Index(out, []byte("-----END CERTIFICATE-----"))
			if pemStart < 0 || pemEnd < 0 {
				t.Fatalf("no certificate in\n%s", out)
			}
			x := exec.Command("openssl", "x509", "-noout", "-text")
			x.Stdin = bytes.NewReader(out[pemStart : pemEnd+len("-----END CERTIFICATE-----\n")])
			text, err := x.CombinedOutput()
			if err != nil {
				t.Fatalf("openssl x509: %v\n%s", err, text)
			}
			ext := regexp.MustCompile(`(?m)^\s*1\.3\.6\.1\.5\.5\.7\.1\.35:(.*)$`).FindSubmatch(text)
			if ext == nil || strings.Contains(string(ext[1]), "critical") {
				t.Fatalf("id-pe-cmw missing or critical:\n%s", text)
			}
			if !bytes.Contains(text, []byte("IP Address:127.0.0.1")) {
				t.Fatalf("no IP SAN:\n%s", text)
			}
		})
	}
}
