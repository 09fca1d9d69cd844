package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// TestDemoThenCheck is the path of a new user: relay demo runs, and relay
// check with the settings the demo writes to data/demo/relay.env passes
// every check, the test delivery included, without writing any code.
func TestDemoThenCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ports := brokertest.FreePorts(t, 1)
	demoEnv := []string{
		"RELAY_DATA_DIR=" + dir,
		"RELAY_LISTEN_ADDR=127.0.0.1:0", // the demo picks the port, as a user may ask it to
		fmt.Sprintf("RELAY_ADMIN_ADDR=127.0.0.1:%d", ports[0]),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var demoOut, demoErr bytes.Buffer
	var wg sync.WaitGroup
	var code int
	wg.Go(func() { code = run(ctx, []string{"demo", "--plain"}, demoEnv, &demoOut, &demoErr) })
	defer func() {
		cancel()
		wg.Wait()
		if code != 0 {
			t.Errorf("demo exit code %d, stderr %q", code, demoErr.String())
		}
	}()

	envFile := filepath.Join(dir, "demo", demoEnvFile)
	testkit.Eventually(t, 30*time.Second, "demo writes "+envFile, func() bool {
		_, err := os.Stat(envFile)
		return err == nil
	})
	f, err := os.Open(envFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := []string{
		fmt.Sprintf("RELAY_ADMIN_ADDR=127.0.0.1:%d", ports[0]),
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		env = append(env, name+"="+strings.Trim(value, "'"))
	}

	var out, errOut bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last relay check:\n%s%s\ndemo output:\n%s", out.String(), errOut.String(), demoOut.String())
		}
	})
	testkit.Eventually(t, 60*time.Second, "relay check passes against the demo", func() bool {
		out.Reset()
		errOut.Reset()
		return run(ctx, []string{"check", "--test-delivery", "--timeout", "20s"}, env, &out, &errOut) == 0
	})
	cancel()
	wg.Wait()
	// The plain view: where NATS is and how to watch it, then status lines
	// that fit 100 columns and say why requests were refused.
	view := demoOut.String()
	if !strings.Contains(view, "nats sub --server nats://") {
		t.Errorf("the plain view gives no nats sub hint:\n%s", view)
	}
	status := 0
	for line := range strings.Lines(view) {
		if strings.Contains(line, "  events ") {
			status++
			if n := utf8.RuneCountInString(strings.TrimRight(line, "\n")); n > 100 {
				t.Errorf("status line of %d columns: %s", n, line)
			}
		}
	}
	if status == 0 {
		t.Errorf("the plain view printed no status line:\n%s", view)
	}
	for _, name := range []string{"config", "nats", "stream", "upvest_token", "verify_keys", "subscription", "test_delivery"} {
		if !regexp.MustCompile(`(?m)^` + name + `\s+ok: `).MatchString(out.String()) {
			t.Errorf("check output lacks a passing %s line:\n%s", name, out.String())
		}
	}
}
