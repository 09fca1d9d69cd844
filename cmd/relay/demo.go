package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

const demoSummary = `Run the whole system on this machine with nothing configured: an embedded
NATS JetStream server, an in-process Upvest sandbox emulator (its own keys,
OAuth tokens, webhook API and a delivery engine that sends signed packages of
realistic events, as Upvest does), and the relay, registered with the
emulator by its own control loop. The terminal shows the events landing on
their subjects. Ctrl-C stops everything.

RELAY_LISTEN_ADDR, RELAY_ADMIN_ADDR, RELAY_DATA_DIR and the stream variables
are honoured; the demo writes only under RELAY_DATA_DIR (its log is
RELAY_DATA_DIR/demo/relay.log).`

func runDemo(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSummary, stdout)
	rate := fs.Float64("rate", 10, "how many times a second the emulated tenant produces activity (one event, or an order or onboarding flow)")
	hostile := fs.Duration("hostile-every", 15*time.Second, "send an unsigned request this often, to show the relay refusing it (0 = never)")
	plain := fs.Bool("plain", false, "print a status line every few seconds instead of redrawing the screen")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rate <= 0 || *rate > 10000 {
		return usageError{fmt.Errorf("relay demo: --rate: must be in (0, 10000], got %v", *rate)}
	}
	cfg, err := config.FromEnviron(env)
	if err != nil {
		return usageError{err}
	}
	dir := filepath.Join(cfg.DataDir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "relay.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}
	defer logFile.Close()
	log := zerolog.New(logFile).Level(cfg.LogLevel).With().Timestamp().Logger()

	emu, err := emulator.New(emulator.WithLogger(log.With().Str("component", "emulator").Logger()))
	if err != nil {
		return err
	}
	defer emu.Close()
	tenant, err := emu.NewTenant()
	if err != nil {
		return err
	}
	pem, err := tenant.KeyPEM()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "tenant-key.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		return fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}

	webhookURL, listen, err := demoWebhookURL(cfg)
	if err != nil {
		return usageError{err}
	}
	cfg.UpvestBaseURL = emu.URL()
	cfg.UpvestClientID = tenant.ClientID
	cfg.UpvestClientSecret = config.NewSecret(tenant.ClientSecret)
	cfg.UpvestSigningKeyFile = keyFile
	cfg.UpvestSigningKeyID = tenant.KeyID
	cfg.VerifyKeysFile = "" // fetch /auth/verify_keys from the emulator, as against Upvest
	cfg.WebhookURL, cfg.ListenAddr = webhookURL, listen
	cfg.WebhookTitle = "upvest-relay demo"
	cfg.WebhookDelay = "1s"
	cfg.ReconcileInterval = 10 * time.Second

	if err := writeDemoEnv(filepath.Join(dir, demoEnvFile), cfg); err != nil {
		return fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}

	view := newLiveView(stdout, *plain, cfg, emu.URL(), filepath.Join(dir, "relay.log"))
	tp, stopTracing, err := newTracing(ctx, env, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	a, err := newService(cfg, log, tp)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	select {
	case <-a.Started():
	case <-gctx.Done():
		return g.Wait()
	}
	g.Go(func() error { return view.run(gctx, a) })
	g.Go(func() error {
		gen := emulator.NewGenerator(uint64(time.Now().UnixNano()))
		return emu.PublishEvery(gctx, tenant.ClientID, time.Duration(float64(time.Second) / *rate), gen)
	})
	if *hostile > 0 {
		g.Go(func() error { return sendHostile(gctx, "http://"+a.IngressAddr()+cfg.WebhookPath, *hostile) })
	}
	err = g.Wait()
	view.final(a)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// demoWebhookURL returns the URL the emulator delivers to, the ingress
// listener on loopback, and the listen address to use. A port of 0 is
// replaced by a free one now, in both, because the URL must be known
// before the listener is opened.
func demoWebhookURL(cfg config.Config) (url, listen string, err error) {
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return "", "", fmt.Errorf("config: RELAY_LISTEN_ADDR: %w", err)
	}
	if port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", "", fmt.Errorf("config: RELAY_LISTEN_ADDR: %w", err)
		}
		port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	listen = net.JoinHostPort(host, port)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + cfg.WebhookPath, listen, nil
}

// sendHostile posts an unsigned package every interval, which the relay
// must refuse with 401 and count in relay_rejections_total.
func sendHostile(ctx context.Context, url string, every time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(every)
	defer t.Stop()
	body := []byte(`{"payload":[{"id":"00000000-0000-4000-8000-000000000bad","created_at":"2026-01-01T00:00:00Z","type":"ORDER.FILLED","object":{},"webhook_id":"forged"}]}`)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// demoEnvFile, under RELAY_DATA_DIR/demo, holds the demo tenant's settings
// as RELAY_* lines, so that relay check, relay keys and relay replay can
// be pointed at the running demo: set -a; . data/demo/relay.env; set +a.
const demoEnvFile = "relay.env"

// writeDemoEnv writes the variables that describe the running demo to
// path (mode 0600: it holds the emulator tenant's client secret, which is
// worth nothing outside this demo).
func writeDemoEnv(path string, cfg config.Config) error {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	keyFile, err := filepath.Abs(cfg.UpvestSigningKeyFile)
	if err != nil {
		return err
	}
	lines := []string{
		"# The running relay demo's settings; load with: set -a; . " + path + "; set +a",
		"RELAY_DATA_DIR=" + dataDir,
		"RELAY_UPVEST_BASE_URL=" + cfg.UpvestBaseURL,
		"RELAY_UPVEST_CLIENT_ID=" + cfg.UpvestClientID,
		"RELAY_UPVEST_CLIENT_SECRET=" + cfg.UpvestClientSecret.Reveal(),
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + keyFile,
		"RELAY_UPVEST_SIGNING_KEY_ID=" + cfg.UpvestSigningKeyID,
		"RELAY_WEBHOOK_URL=" + cfg.WebhookURL,
		"RELAY_WEBHOOK_TITLE='" + cfg.WebhookTitle + "'",
		"RELAY_WEBHOOK_DELAY=" + cfg.WebhookDelay,
	}
	// Written aside and renamed, so that nobody (relay check started at
	// once, a shell sourcing it) ever reads half of it.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
