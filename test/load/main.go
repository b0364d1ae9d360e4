// Command load is the attestd load test: it starts the built attestd on the
// software NSM (--nsm mock:DIR, a fresh mock directory) on a unix socket, runs
// CLIENTS concurrent clients (one connection each) that send REQUESTS attest
// requests in total, each with a fresh random nonce, and reports errors,
// latency percentiles, throughput and attestd's peak RSS (VmHWM). Every 64th
// document is verified (nonce included) against the mock root.
//
//	go run ./test/load --attestd bin/attestd --clients 256 --requests 50000
//
// Exit status: 0 when every request succeeded and attestd exited cleanly on
// SIGTERM, 1 otherwise, 2 on a usage error.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/vsockrpc"
	"github.com/fxamacker/cbor/v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// verifyEvery is how often a document is fully verified.
const verifyEvery = 64

func run() error {
	bin := flag.String("attestd", "bin/attestd", "the attestd binary")
	clients := flag.Int("clients", 32, "concurrent clients, one connection each")
	requests := flag.Int("requests", 2000, "attest requests in total")
	idle := flag.Int("idle", 0, "idle connections to hold open during the run (each makes one health request first)")
	timeout := flag.Duration("timeout", 30*time.Second, "per-request timeout")
	flag.Parse()
	if flag.NArg() > 0 || *clients < 1 || *requests < 1 || *idle < 0 {
		return usageError{errors.New("want --clients >= 1, --requests >= 1, --idle >= 0 and no arguments")}
	}

	dir, err := os.MkdirTemp("", "attestd-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mockDir := filepath.Join(dir, "mock")
	if err := mocknsm.Init(mockDir, mocknsm.Config{}); err != nil {
		return err
	}
	rootPEM, err := os.ReadFile(filepath.Join(mockDir, "root.pem"))
	if err != nil {
		return err
	}
	root, err := attestation.ParseRootPEM(rootPEM)
	if err != nil {
		return err
	}
	verifier, err := attestation.NewVerifier(attestation.Options{Root: root, AnyPCRs: true})
	if err != nil {
		return err
	}

	sock := filepath.Join(dir, "p.sock")
	d, err := startAttestd(*bin, mockDir, sock, filepath.Join(dir, "l.sock"))
	if err != nil {
		return err
	}
	defer d.kill()

	held, err := holdIdle(sock, *idle)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}

	fmt.Printf("load: %d clients, %d attest requests (hpke and rsa alternating, 32-byte random nonces), %d idle connections\n",
		*clients, *requests, *idle)
	fmt.Printf("attestd: %s --nsm mock:DIR (software NSM) on unix socket %s\n", *bin, sock)

	var (
		next      atomic.Int64
		errCount  atomic.Int64
		verified  atomic.Int64
		firstErrs = make(chan error, 5)
		wg        sync.WaitGroup
		lats      = make([][]time.Duration, *clients)
	)
	next.Store(int64(*requests))
	t0 := time.Now()
	for w := range *clients {
		wg.Go(func() {
			fail := func(err error) {
				errCount.Add(1)
				select {
				case firstErrs <- err:
				default:
				}
			}
			c, err := vsockrpc.Dial(context.Background(), "unix://"+sock)
			if err != nil {
				// The requests this client would have sent count as errors too.
				for next.Add(-1) >= 0 {
					fail(err)
				}
				return
			}
			defer c.Close()
			nonce := make([]byte, 32)
			for {
				i := next.Add(-1)
				if i < 0 {
					return
				}
				rand.Read(nonce)
				key := keys.HPKE
				if i%2 == 1 {
					key = keys.RSA
				}
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				s := time.Now()
				res, err := c.Attest(ctx, nonce, key)
				lat := time.Since(s)
				cancel()
				if err != nil {
					fail(fmt.Errorf("request %d: %w", i, err))
					continue
				}
				lats[w] = append(lats[w], lat)
				if i%verifyEvery == 0 {
					doc, err := verifier.VerifyNonce(res.Document, nonce)
					if err == nil {
						err = keys.CheckBinding(key, doc.PublicKey, res.PublicKey)
					}
					if err != nil {
						fail(fmt.Errorf("request %d: document rejected: %w", i, err))
						continue
					}
					verified.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(firstErrs)

	hwm, rss := procKiB(d.cmd.Process.Pid, "VmHWM"), procKiB(d.cmd.Process.Pid, "VmRSS")
	exitErr := d.stop()

	all := slices.Concat(lats...)
	slices.Sort(all)
	ok := len(all)
	fmt.Printf("requests    %d ok, %d errors, %d documents verified\n", ok, errCount.Load(), verified.Load())
	fmt.Printf("throughput  %.0f req/s (%v)\n", float64(ok)/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	if ok > 0 {
		fmt.Printf("latency     p50 %v  p90 %v  p99 %v  max %v\n", pct(all, 50), pct(all, 90), pct(all, 99), all[len(all)-1].Round(time.Microsecond))
	}
	fmt.Printf("attestd     peak RSS (VmHWM) %.1f MiB, RSS at the end %.1f MiB\n", float64(hwm)/1024, float64(rss)/1024)

	for err := range firstErrs {
		fmt.Fprintf(os.Stderr, "load: error: %v\n", err)
	}
	switch {
	case errCount.Load() > 0:
		return fmt.Errorf("%d of %d requests failed", errCount.Load(), *requests)
	case exitErr != nil:
		return fmt.Errorf("attestd did not exit cleanly on SIGTERM: %v\n%s", exitErr, d.log.String())
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}

// daemon is the attestd process under load.
type daemon struct {
	cmd    *exec.Cmd
	log    *strings.Builder
	logMu  sync.Mutex
	exited chan error
}

func startAttestd(bin, mockDir, sock, local string) (*daemon, error) {
	// The software NSM relaxes the host gates (hwrng, kernel, clock source) by itself.
	cmd := exec.Command(bin, "--nsm", "mock:"+mockDir,
		"--listen", "unix://"+sock, "--local", "unix://"+local)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, log: &strings.Builder{}, exited: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			d.logMu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.logMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "attestd ready") {
				close(ready)
				signalled = true
			}
		}
		d.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
		return d, nil
	case err := <-d.exited:
		d.exited <- err
		return nil, fmt.Errorf("attestd exited at start-up (%v):\n%s", err, d.log.String())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		return nil, errors.New("attestd did not become ready within 2 minutes")
	}
}

// stop sends SIGTERM and waits for the exit.
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(time.Minute):
		d.cmd.Process.Kill()
		return errors.New("no exit within a minute of SIGTERM")
	}
}

// kill ends the process if it still runs.
func (d *daemon) kill() {
	select {
	case err := <-d.exited:
		d.exited <- err
	default:
		d.cmd.Process.Kill()
	}
}

// holdIdle opens n connections, makes one successful health request on each
// and leaves them open.
func holdIdle(sock string, n int) ([]net.Conn, error) {
	body, err := cbor.Marshal(map[string]any{"v": vsockrpc.Version, "id": uint64(1), "method": "health", "params": map[string]any{}})
	if err != nil {
		return nil, err
	}
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(frame); err != nil {
			return conns, err
		}
		resp, err := vsockrpc.ReadFrame(c, 1<<20)
		if err != nil {
			return conns, fmt.Errorf("idle connection %d: %w", len(conns), err)
		}
		var r struct {
			Error *vsockrpc.Error `cbor:"error"`
		}
		if err := cbor.Unmarshal(resp, &r); err != nil || r.Error != nil {
			return conns, fmt.Errorf("idle connection %d: health failed: %v %v", len(conns), err, r.Error)
		}
		c.SetDeadline(time.Time{})
	}
	return conns, nil
}

// procKiB reads a "kB" field of /proc/PID/status (0 if unavailable).
func procKiB(pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
