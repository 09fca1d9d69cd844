package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     []string
		code    int
		stdout  string // substring
		stderr  string // substring
		oneLine bool   // stderr is exactly one line
	}{
		{name: "help", args: []string{"--help"}, code: 0, stdout: "Commands:"},
		{name: "serve help", args: []string{"serve", "--help"}, code: 0, stdout: "RELAY_VERIFY_KEYS_FILE"},
		{name: "demo help", args: []string{"demo", "--help"}, code: 0, stdout: "Ctrl-C"},
		{name: "replay help", args: []string{"replay", "--help"}, code: 0, stdout: "--since"},
		{name: "version help", args: []string{"version", "--help"}, code: 0},
		{name: "version", args: []string{"version"}, code: 0, stdout: "relay "},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: "unknown command", oneLine: true},
		{name: "unknown flag", args: []string{"serve", "--bogus"}, code: 2, stderr: "--help", oneLine: true},
		{name: "unknown variable", env: []string{"RELAY_NOPE=1"}, code: 2, stderr: "RELAY_NOPE", oneLine: true},
		{name: "invalid value", env: []string{"RELAY_STREAM_REPLICAS=9"}, code: 2, stderr: "RELAY_STREAM_REPLICAS", oneLine: true},
		{name: "no way to get keys", env: []string{"RELAY_DATA_DIR=" + t.TempDir(), "RELAY_LISTEN_ADDR=127.0.0.1:0", "RELAY_ADMIN_ADDR=127.0.0.1:0", "RELAY_LOG_LEVEL=disabled"}, code: 2, stderr: "RELAY_VERIFY_KEYS_FILE", oneLine: true},
		{name: "unsupported trace exporter", env: []string{"OTEL_TRACES_EXPORTER=zipkin", "RELAY_DATA_DIR=" + t.TempDir(), "RELAY_LISTEN_ADDR=127.0.0.1:0", "RELAY_ADMIN_ADDR=127.0.0.1:0", "RELAY_LOG_LEVEL=disabled"}, code: 2, stderr: "OTEL_TRACES_EXPORTER", oneLine: true},
		{name: "replay bad since", args: []string{"replay", "--since", "yesterday"}, code: 2, stderr: "--since", oneLine: true},
		{name: "replay republish into source", args: []string{"replay", "--republish", "upvest.copy"}, code: 2, stderr: "--republish", oneLine: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, configtest.Env(tt.env...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
			if tt.oneLine && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
		})
	}
}

// TestBinaryServeSIGTERM builds the real binary, runs `relay serve` with
// only a keys file, waits for readiness and stops it with SIGTERM: exit 0.
func TestBinaryServeSIGTERM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "relay")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	jwks, _ := emu.JWKS()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"RELAY_VERIFY_KEYS_FILE=" + keys,
		"RELAY_DATA_DIR=" + filepath.Join(dir, "data"),
		"RELAY_LISTEN_ADDR=127.0.0.1:0",
		"RELAY_ADMIN_ADDR=127.0.0.1:0",
		"RELAY_UPVEST_CLIENT_SECRET=s3cr3t-value",
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The "relay started" log line names the bound addresses.
	lines := bufio.NewScanner(stderr)
	var admin string
	deadline := time.After(30 * time.Second)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			var l struct {
				Message string `json:"message"`
				Admin   string `json:"admin"`
			}
			if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "relay started" {
				found <- l.Admin
			}
			if strings.Contains(lines.Text(), "s3cr3t-value") {
				t.Errorf("log line leaks the client secret: %s", lines.Text())
			}
		}
	}()
	select {
	case admin = <-found:
	case <-deadline:
		t.Fatal("no 'relay started' log line within 30s")
	}
	ready := func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for start := time.Now(); !ready(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("not ready within 10s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not exit within 30s of SIGTERM")
	}
}

// TestConfigMistakeStartsNothing: a configuration that cannot work is
// refused before the embedded server is started or anything is written.
func TestConfigMistakeStartsNothing(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	env := []string{"RELAY_DATA_DIR=" + dataDir, "RELAY_LISTEN_ADDR=127.0.0.1:0", "RELAY_ADMIN_ADDR=127.0.0.1:0"}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve"}, env, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "RELAY_VERIFY_KEYS_FILE") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q is not one line naming RELAY_VERIFY_KEYS_FILE", stderr.String())
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data dir %s exists after a refused start (err %v), want nothing written", dataDir, err)
	}
}
