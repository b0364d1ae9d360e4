// Package leaktest holds the two measurements the leak tests share: open file
// descriptors and a polling wait for goroutines to wind down.
package leaktest

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// FDs returns the number of open file descriptors of this process; it skips
// the test where /proc/self/fd does not exist.
func FDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// WaitGoroutines polls until at most n goroutines run (goroutines of finished
// work wind down asynchronously) and fails with every stack after 10 s. It
// never asserts on timing.
func WaitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want <= %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
