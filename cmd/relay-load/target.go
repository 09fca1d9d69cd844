package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/verify"
)

// target is the relay under load: a `relay serve` process (what the
// numbers are about) or, for quick looks, a relay.Handler in this process.
type target interface {
	// post sends p and fails unless the answer is 200.
	post(ctx context.Context, p *pkg) error
	// usage is the relay's own CPU time, heap allocations and peak RSS
	// since the last resetPeak; ok is false in process.
	usage() (u usage, ok bool)
	resetPeak()
	// ingressAddr is the relay's webhook listener, for raw connections.
	ingressAddr() string
	close()
}

// usage of the relay process.
type usage struct {
	CPU     time.Duration `json:"cpu_ns"`
	Mallocs uint64        `json:"mallocs"`
	PeakRSS uint64        `json:"peak_rss_bytes"`
	// The relay's own histograms: time from receiving a request to
	// answering it, and from the first publish to the last PubAck.
	Package time.Duration `json:"package_time_sum_ns"`
	Publish time.Duration `json:"publish_time_sum_ns"`
	GCs     uint64        `json:"gc_cycles"`
	// Batches is the fast-ingest batches the relay sent.
	Batches uint64 `json:"batches"`
}

func (u usage) minus(v usage) usage {
	return usage{CPU: u.CPU - v.CPU, Mallocs: u.Mallocs - v.Mallocs, PeakRSS: u.PeakRSS,
		Package: u.Package - v.Package, Publish: u.Publish - v.Publish, GCs: u.GCs - v.GCs,
		Batches: u.Batches - v.Batches}
}

// client posts packages to a relay over loopback HTTP, one keep-alive
// connection per sender.
type client struct {
	addr string
	url  string
	hc   *http.Client
}

func newClient(addr string, conns int) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	return &client{addr: addr, url: "http://" + addr + webhookPath, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// ingressAddr is the relay's webhook listener.
func (c *client) ingressAddr() string { return c.addr }

func (c *client) post(ctx context.Context, p *pkg) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header = p.header.Clone()
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

// process is a relay binary run as `relay serve` against the load's NATS
// server, with the emulator's keys in a static JWKS file and the control
// loop off.
type process struct {
	*client
	cmd   *exec.Cmd
	admin string
	log   string
}

func startProcess(ctx context.Context, bin, dir, natsURL string, replicas int, jwks []byte, conns int) (*process, error) {
	keys := filepath.Join(dir, "verify-keys.json")
	if err := os.WriteFile(keys, jwks, 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	ingress, admin := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	logPath := filepath.Join(dir, "relay.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"RELAY_LISTEN_ADDR="+ingress,
		"RELAY_ADMIN_ADDR="+admin,
		"RELAY_NATS_URL="+natsURL,
		"RELAY_STREAM_REPLICAS="+strconv.Itoa(replicas),
		"RELAY_STREAM="+streamName,
		"RELAY_VERIFY_KEYS_FILE="+keys,
		"RELAY_DATA_DIR="+filepath.Join(dir, "relay-data"),
		"RELAY_LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = cmd.Wait(); logFile.Close() }()
	p := &process{client: newClient(ingress, conns), cmd: cmd, admin: admin, log: logPath}
	if err := waitReady(ctx, "http://"+admin+"/readyz", 30*time.Second); err != nil {
		p.close()
		tail, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("relay not ready: %w\n%s", err, tail)
	}
	return p, nil
}

func (p *process) close() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for syscall.Kill(p.cmd.Process.Pid, 0) == nil {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)); err == nil && strings.Contains(string(b), ") Z ") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times.
const clockTick = 100

func (p *process) usage() (usage, bool) {
	var u usage
	pid := p.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name: state is field 3, utime 14, stime 15.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseUint(f[11], 10, 64)
				st, _ := strconv.ParseUint(f[12], 10, 64)
				u.CPU = time.Duration(ut+st) * time.Second / clockTick
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				u.PeakRSS = kb << 10
			}
		}
	}
	m := scrape("http://"+p.admin+"/metrics", "go_memstats_mallocs_total", "relay_package_duration_seconds_sum",
		"relay_publish_duration_seconds_sum", "go_gc_duration_seconds_count", "relay_batch_packages_count")
	u.Mallocs = uint64(m[0])
	u.Package = time.Duration(m[1] * float64(time.Second))
	u.Publish = time.Duration(m[2] * float64(time.Second))
	u.GCs = uint64(m[3])
	u.Batches = uint64(m[4])
	return u, true
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS.
func (p *process) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// scrape reads unlabelled samples from a Prometheus text endpoint; 0 for
// one that is not there.
func scrape(url string, names ...string) []float64 {
	out := make([]float64, len(names))
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		for i, name := range names {
			if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					out[i] = v
				}
			}
		}
	}
	return out
}

// inProcess is a relay.Handler with the real verifier behind relay.NewServer
// on loopback, in this process: it shares the CPU, heap and GC with the
// load generator and the NATS server, so it measures no usage.
type inProcess struct {
	*client
	srv *http.Server
}

func startInProcess(js relay.Publisher, v *verify.Verifier, conns int, log zerolog.Logger) (*inProcess, error) {
	h, err := relay.NewHandler(webhookPath, v, js,
		relay.WithLogger(zerolog.New(io.Discard).Level(zerolog.InfoLevel)),
		relay.WithRegisterer(prometheus.NewRegistry()),
		relay.WithMaxInFlight(max(relay.DefaultMaxInFlight, conns)))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := relay.NewServer(ln.Addr().String(), h, log)
	go func() { _ = hs.Serve(ln) }()
	return &inProcess{client: newClient(ln.Addr().String(), conns), srv: hs}, nil
}

func (p *inProcess) usage() (usage, bool) { return usage{}, false }
func (p *inProcess) resetPeak()           {}
func (p *inProcess) close()               { _ = p.srv.Close() }

func waitReady(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// buildRelay builds ./cmd/relay into dir, as `make build` would.
func buildRelay(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "relay")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/upvest-relay/upvest-relay/cmd/relay")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/relay (run inside the repository, or pass -relay): %w\n%s", err, out)
	}
	return bin, nil
}
