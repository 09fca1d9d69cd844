package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process that can be killed, frozen and restarted with
// the same command line. Output goes to a log file in the work directory.
type proc struct {
	name string
	args []string
	env  []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = cmd
	go func() { _ = cmd.Wait(); f.Close() }()
	return nil
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
	pid := p.pid()
	for pid != 0 && syscall.Kill(pid, 0) == nil {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(b), ") Z ") {
			break // a zombie waiting for Wait: gone for our purpose
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop asks the process to stop (SIGTERM) and waits up to d, then kills it.
func (p *proc) stop(d time.Duration) {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	deadline := time.Now().Add(d)
	pid := p.pid()
	for pid != 0 && syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
}

// freePorts reserves n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// node is one nats-server of the cluster.
type node struct {
	proc
	serverName string
	clientPort int
	monPort    int
}

func (n *node) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.clientPort) }

// startCluster writes a config per node and starts three nats-servers
// clustered over loopback routes, JetStream on file storage under dir.
func startCluster(bin, dir string) ([]*node, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		var routes []string
		for j := range nodes {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[6+j]))
			}
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 16MB
jetstream { store_dir: %q, max_memory_store: 256MB, max_file_store: 8GB }
cluster { name: chaos, listen: 127.0.0.1:%d, routes: [%s] }
`, name, ports[i], ports[3+i], filepath.Join(dir, name), ports[6+i], strings.Join(routes, ", "))
		cf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		nodes[i] = &node{
			proc:       proc{name: name, args: []string{bin, "-c", cf}, log: filepath.Join(dir, name+".log")},
			serverName: name,
			clientPort: ports[i],
			monPort:    ports[3+i],
		}
		if err := nodes[i].start(); err != nil {
			return nil, err
		}
	}
	for _, n := range nodes {
		if err := waitHTTP(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", n.monPort), 30*time.Second); err != nil {
			return nodes, fmt.Errorf("%s did not become healthy: %w", n.serverName, err)
		}
	}
	return nodes, nil
}

// relayProc is one relay replica.
type relayProc struct {
	proc
	ingress, admin string
}

func (r *relayProc) webhookURL() string { return "http://" + r.ingress + "/webhooks/upvest" }

// startRelay starts a relay replica attached to the cluster (its own order
// of seed URLs) with a static verification key file.
func startRelay(bin, dir, name, natsURLs, keysFile string) (*relayProc, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	r := &relayProc{
		ingress: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		admin:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	data := filepath.Join(dir, name+"-data")
	r.proc = proc{
		name: name,
		args: []string{bin, "serve"},
		env: []string{
			"RELAY_LISTEN_ADDR=" + r.ingress,
			"RELAY_ADMIN_ADDR=" + r.admin,
			"RELAY_NATS_URL=" + natsURLs,
			"RELAY_STREAM_REPLICAS=3",
			"RELAY_VERIFY_KEYS_FILE=" + keysFile,
			"RELAY_DATA_DIR=" + data,
			"RELAY_LOG_LEVEL=info",
		},
		log: filepath.Join(dir, name+".log"),
	}
	return r, r.start()
}

// waitReady polls the relay's /readyz until 200 or d passes.
func (r *relayProc) waitReady(ctx context.Context, d time.Duration) error {
	return waitHTTP(ctx, "http://"+r.admin+"/readyz", d)
}

func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
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

// attachedPort returns the remote port of pid's established TCP connection
// to one of ports (the NATS node the process is attached to), read from
// /proc; 0 when none is found.
func attachedPort(pid int, ports []int) int {
	if pid == 0 {
		return 0
	}
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "01" || !inodes[fields[9]] { // 01: ESTABLISHED
			continue
		}
		_, hexPort, ok := strings.Cut(fields[2], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseInt(hexPort, 16, 32)
		if err == nil && want[int(port)] {
			return int(port)
		}
	}
	return 0
}
