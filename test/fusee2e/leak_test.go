//go:build linux

package fusee2e

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/leaktest"
	"github.com/attestd/attestd/nsm"
)

// TestNoLeakAfter10000Requests drives 10,000 requests through the device in
// ten sessions (four concurrent callers each) and checks that the client is
// back to its file descriptors and goroutines afterwards.
func TestNoLeakAfter10000Requests(t *testing.T) {
	_, path := startDevice(t, "")
	const sessions, callers, perCaller = 10, 4, 250 // 10 * 4 * 250 = 10,000
	fdsBefore, goroutinesBefore := leaktest.FDs(t), runtime.NumGoroutine()

	ctx := context.Background()
	for range sessions {
		s, err := nsm.Open(nsm.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if n := leaktest.FDs(t); n != fdsBefore+1 {
			t.Fatalf("an open session holds %d descriptors more, want 1", n-fdsBefore)
		}
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perCaller {
					var err error
					switch (c + i) % 3 {
					case 0:
						_, err = s.GetRandom(ctx)
					case 1:
						_, err = s.DescribePCR(ctx, uint16(i%32))
					case 2:
						_, err = s.DescribeNSM(ctx)
					}
					if err != nil {
						errs <- fmt.Errorf("caller %d request %d: %w", c, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	if n := leaktest.FDs(t); n != fdsBefore {
		t.Errorf("%d file descriptors after the sessions closed, %d before", n, fdsBefore)
	}
	// Exited goroutines disappear asynchronously; wait for them, boundedly.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the sessions closed, %d before:\n%s", n, goroutinesBefore, buf[:runtime.Stack(buf, true)])
	}
}
