package platform

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseRelease: no panic; an accepted release starts with the version it
// parsed to, which round-trips; a rejected one gets one line wrapping
// ErrBadRelease and the zero Version.
func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"6.1.0-27-amd64", "5.17.12", "5.17.12-rc1", "5.18.0-rc1", "5.10.215-203.850.amzn2.x86_64",
		"5.15.153.1-microsoft-standard-WSL2", "5.4.0-rcu", "", "5", "5.17", "abc", "05.1.1", "5.17.12-rc0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRelease(s)
		if err != nil {
			if !errors.Is(err, ErrBadRelease) || v != (Version{}) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: %v, %v", s, v, err)
			}
			return
		}
		if len(s) > MaxReleaseLen {
			t.Fatalf("%q: %d bytes accepted", s, len(s))
		}
		for _, n := range []int{v.Major, v.Minor, v.Patch, v.RC} {
			if n < 0 || n > 9999 {
				t.Fatalf("%q: %v out of range", s, v)
			}
		}
		if !strings.HasPrefix(s, v.String()) || !strings.HasPrefix(s, fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)) {
			t.Fatalf("%q parsed to %v", s, v)
		}
		if w, err := ParseRelease(v.String()); err != nil || w != v {
			t.Fatalf("%q: %v does not round-trip: %v, %v", s, v, w, err)
		}
	})
}
