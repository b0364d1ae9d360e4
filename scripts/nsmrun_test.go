package scripts

import (
	"strings"
	"testing"
)

// TestNSMRunExitStatus runs nsm-run_test.sh: nsm-run.sh exits with its program's own status when a
// TERM is forwarded, whenever it arrives (make demo once failed with the interrupted wait's 143).
func TestNSMRunExitStatus(t *testing.T) {
	code, out := script(t, nil, "nsm-run_test.sh")
	if code != 0 || !strings.Contains(out, "nsm-run_test: ok") {
		t.Fatalf("nsm-run_test.sh: exit %d\n%s", code, out)
	}
}
