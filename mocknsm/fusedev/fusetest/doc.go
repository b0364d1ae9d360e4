// Package fusetest serves an NSM FUSE device (package fusedev) from a helper
// process for tests, so that the test process only ever acts as the client.
//
// Serving FUSE from the process that makes the ioctls can leave it in
// uninterruptible sleep (even SIGKILL cannot end it), so the helper is the test
// binary itself, re-executed:
//
//	func TestMain(m *testing.M) {
//		fusetest.RunHelperIfRequested(map[string]fusetest.Factory{
//			"mock": func(dir string) (fusedev.Handler, error) { return mocknsm.Open(dir) },
//		})
//		os.Exit(m.Run())
//	}
//
//	func TestX(t *testing.T) {
//		dev := fusetest.Start(t, "mock", stateDir) // skips unless root and /dev/fuse
//		f, err := os.Open(dev.Path)
//		...
//	}
//
// The helper runs in its own mount namespace (CLONE_NEWNS; Go makes / private
// there) with Pdeathsig SIGKILL, mounts the device on an empty directory that
// exists in both namespaces, and exits when its stdin reaches EOF. The test
// reaches the device through /proc/<helper pid>/root/<dir>/nsm. Whatever
// happens to either process, no mount is left on the host.
//
// Pdeathsig fires when the OS thread that started the helper exits; Go only
// ends threads whose goroutine exits while locked with runtime.LockOSThread,
// so tests that lock threads must unlock them before returning.
package fusetest
