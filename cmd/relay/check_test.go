package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

func TestVersionFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-v"}, {"-version"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		if got := stdout.String(); got != "relay "+version+"\n" {
			t.Errorf("%v: stdout %q, want the version", args, got)
		}
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ arg, want string }{
		{"serv", "did you mean serve?"},
		{"chek", "did you mean check?"},
		{"replya", "did you mean replay?"},
		{"ke", "did you mean keys?"},
		{"frobnicate", "unknown command \"frobnicate\" (try"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{tt.arg}, nil, &stdout, &stderr); code != 2 {
			t.Errorf("%s: exit %d, want 2", tt.arg, code)
		}
		if !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: stderr %q, want one line containing %q", tt.arg, stderr.String(), tt.want)
		}
	}
}

// checkEnv is an emulator tenant and an embedded JetStream with the stream,
// as RELAY_* variables (control loop off, keys fetched).
func checkEnv(t *testing.T) (*emulator.Server, []string) {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := tenant.KeyPEM()
	keyFile := filepath.Join(t.TempDir(), "tenant.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _, js := brokertest.New(t)
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: 720 * time.Hour, Replicas: 1, Duplicates: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return emu, []string{
		"RELAY_NATS_URL=" + srv.ClientURL(),
		"RELAY_UPVEST_BASE_URL=" + emu.URL(),
		"RELAY_UPVEST_CLIENT_ID=" + tenant.ClientID,
		"RELAY_UPVEST_CLIENT_SECRET=" + tenant.ClientSecret,
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + keyFile,
		"RELAY_UPVEST_SIGNING_KEY_ID=" + tenant.KeyID,
	}
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	_, env := checkEnv(t)

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check"}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(check.Names()) {
		t.Fatalf("%d lines, want one per check:\n%s", len(lines), stdout.String())
	}
	for i, n := range check.Names() {
		if !strings.HasPrefix(lines[i], n+" ") {
			t.Errorf("line %d %q does not start with %s", i, lines[i], n)
		}
	}

	// A wrong secret: exit 1, and --json gives one parsable object per check.
	stdout.Reset()
	stderr.Reset()
	wrong := configtest.Env(append(env, "RELAY_UPVEST_CLIENT_SECRET=wrong")...)
	if code := run(context.Background(), []string{"check", "--json"}, wrong, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s", code, stdout.String())
	}
	if !strings.Contains(stderr.String(), "checks failed") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line saying checks failed", stderr.String())
	}
	status := map[string]check.Status{}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r check.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		status[r.Check] = r.Status
	}
	if status[check.UpvestToken] != check.Failed || status[check.NATS] != check.OK {
		t.Errorf("statuses %v, want upvest_token failed and nats ok", status)
	}
}

func TestKeysCommand(t *testing.T) {
	t.Parallel()
	emu, env := checkEnv(t)
	if _, err := emu.RotateKey(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"keys"}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
	if _, err := verify.ParseKeys(stdout.Bytes()); err != nil {
		t.Fatalf("output does not parse as a keys file: %v\n%s", err, stdout.String())
	}
	kids := check.Kids(stdout.Bytes())
	for kid := range emu.SigningKeys() {
		if !strings.Contains(strings.Join(kids, " "), kid) {
			t.Errorf("output kids %v lack the emulator's %s", kids, kid)
		}
	}
	if len(kids) != 2 {
		t.Errorf("kids %v, want the current and the rotated-out key", kids)
	}

	// Without credentials: one line, exit 2.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"keys"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "RELAY_UPVEST_CLIENT_ID") {
		t.Errorf("without credentials: exit %d, stderr %q; want 2 naming RELAY_UPVEST_CLIENT_ID", code, stderr.String())
	}
}
