package vsockrpc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseAddr(t *testing.T) {
	good := map[string]Addr{
		"vsock://:5005":         {Network: "vsock", CID: AnyCID, Port: 5005},
		"vsock://16:5005":       {Network: "vsock", CID: 16, Port: 5005},
		"vsock://3:0":           {Network: "vsock", CID: 3, Port: 0},
		"vsock://0:4294967294":  {Network: "vsock", CID: 0, Port: 0xFFFFFFFE},
		"unix:///run/attestd.s": {Network: "unix", Path: "/run/attestd.s"},
		"unix://rel/s":          {Network: "unix", Path: "rel/s"},
		"tcp://127.0.0.1:5005":  {Network: "tcp", HostPort: "127.0.0.1:5005"},
		"tcp://[::1]:0":         {Network: "tcp", HostPort: "[::1]:0"},
		"tcp://enclave.dev:80":  {Network: "tcp", HostPort: "enclave.dev:80"},
	}
	for s, want := range good {
		got, err := ParseAddr(s)
		if err != nil || got != want {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v", s, got, err, want)
			continue
		}
		if got.String() != s {
			t.Errorf("String() = %q, want %q", got.String(), s)
		}
	}
	for _, s := range []string{
		"", "5005", ":5005", "vsock:5005", "vsock://", "vsock://5005", "vsock://16:", "vsock://:x",
		"vsock://:-1", "vsock://:+5", "vsock://:4294967295", "vsock://:4294967296", "vsock://4294967295:1",
		"vsock://0x10:5005", "vsock://16:5005:1", "unix://", "unix://@abstract", "unix:///a\x00b",
		"tcp://127.0.0.1", "tcp://:5005", "tcp://127.0.0.1:65536", "tcp://127.0.0.1:http", "http://127.0.0.1:80",
		"VSOCK://:5005",
	} {
		if a, err := ParseAddr(s); err == nil {
			t.Errorf("ParseAddr(%q) = %+v, want an error", s, a)
		}
	}
}

func TestListenTCPLoopbackOnly(t *testing.T) {
	for _, s := range []string{"tcp://0.0.0.0:0", "tcp://[::]:0", "tcp://10.0.0.1:0", "tcp://localhost:0"} {
		if l, err := Listen(s); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", s)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Listen(%q): %v", s, err)
		}
	}
}

// TestRoundTripTCP serves the parent API on loopback TCP.
func TestRoundTripTCP(t *testing.T) {
	l, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{API: ParentAPI(newFake()), Logger: quietLogger()}
	go srv.Serve(l)
	defer srv.Close()
	c := dialT(t, "tcp://"+l.Addr().String())
	if _, err := c.Attest(testCtx(t), []byte("n"), "rsa"); err != nil {
		t.Fatal(err)
	}
	// A frame error over TCP still reaches the client (the server half-closes and drains
	// instead of resetting).
	nc := rawDial(t, "tcp://"+l.Addr().String())
	nc.Write([]byte{0xff, 0xff, 0xff, 0xff})
	nc.Write(make([]byte, 4096))
	if _, _, perr := readResponse(t, nc); perr == nil || perr.Code != CodeFrameTooLarge {
		t.Fatalf("got %v", perr)
	}
}

func TestDialVsockNeedsCID(t *testing.T) {
	if _, err := Dial(testCtx(t), "vsock://:5005"); err == nil || !strings.Contains(err.Error(), "context id") {
		t.Fatalf("got %v", err)
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	old := syscall.Umask(0) // the loosest umask: the socket must still be 0600
	l, err := Listen("unix://" + path)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	if got := l.Addr().String(); got != path {
		t.Fatalf("Addr() = %q, want %q", got, path)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	// Someone listens: refused.
	if l2, err := Listen("unix://" + path); err == nil {
		l2.Close()
		t.Fatal("listened twice on one path")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen: %v", err)
	}
	// Serving works through the renamed socket.
	srv := &Server{API: ParentAPI(newFake()), Logger: quietLogger()}
	go srv.Serve(l)
	if _, err := dialT(t, "unix://"+path).Health(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	srv.Close() // closes l, which removes the socket
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}

	// A stale socket (nobody listening) is replaced.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err = Listen("unix://" + path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l.Close()

	// Anything else at the path is left alone.
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen("unix://" + path); err == nil {
		l.Close()
		t.Fatal("replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Fatal("regular file changed")
	}
	if _, err := Listen("unix://" + filepath.Join(dir, "missing", "s")); err == nil {
		t.Fatal("listened in a missing directory")
	}
}
