//go:build linux

package fusee2e

import (
	"os"
	"time"

	"github.com/attestd/attestd/internal/docproof"
)

// verifyDocument checks doc with the tests' independent checker against the
// root in rootPEMFile, at the document's own timestamp.
func verifyDocument(doc []byte, rootPEMFile string) (*docproof.Payload, error) {
	rootPEM, err := os.ReadFile(rootPEMFile)
	if err != nil {
		return nil, err
	}
	_, p, err := docproof.Decode(doc)
	if err != nil {
		return nil, err
	}
	return docproof.Verify(doc, rootPEM, time.UnixMilli(int64(p.Timestamp)))
}
