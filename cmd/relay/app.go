package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/subjects"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/verify"
)

const (
	// ackWait bounds how long a package waits for its PubAcks before the
	// relay answers 503 and lets Upvest retry.
	ackWait = 10 * time.Second
	// shutdownGrace bounds the drain of in-flight packages on SIGTERM.
	shutdownGrace = 30 * time.Second
	// leaseTTL is the control-loop lease TTL (the contract allows ≤ 15 s).
	leaseTTL = 10 * time.Second
	// startupTimeout bounds the JetStream set-up at start (stream, lease
	// bucket), retries included; jsCallTimeout bounds each attempt.
	startupTimeout = time.Minute
	jsCallTimeout  = 5 * time.Second
	// testEventType is the event Upvest's POST /webhooks/{id}/test sends;
	// testDeliveryWait is how long the keeper waits to see it arrive.
	testEventType    = "WEBHOOK.TEST"
	testDeliveryWait = 30 * time.Second
	// urlFile, under RELAY_DATA_DIR, records the embedded server's client
	// URL so that relay replay finds a running relay.
	urlFile = "nats.url"
)

// app is a running relay: everything serve starts, wired together. demo
// starts the same app and looks inside it.
type app struct {
	cfg      config.Config
	log      zerolog.Logger
	registry *prometheus.Registry
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *broker.Embedded
	keeper   *keeper.Keeper

	ingress, admin net.Listener
}

// IngressAddr is the address the webhook listener is bound to.
func (a *app) IngressAddr() string { return a.ingress.Addr().String() }

// runApp starts the relay described by cfg and runs it until ctx ends or a
// component fails, then shuts down in order: stop accepting webhooks and
// finish in-flight packages (their PubAcks), stop the control loop and key
// refresh, drain NATS, stop the embedded server. started, if not nil, is
// called once everything is listening.
func runApp(ctx context.Context, cfg config.Config, log zerolog.Logger, started func(*app)) (err error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Everything that only reads configuration and files comes first, so a
	// mistake there fails before anything is started or written.
	var client *upvest.Client
	if cfg.UpvestClientID != "" {
		if client, err = newUpvestClient(cfg, log); err != nil {
			return err
		}
	}
	if cfg.WebhookURL != "" && client == nil {
		return usageError{errors.New("config: RELAY_UPVEST_CLIENT_ID: required when RELAY_WEBHOOK_URL is set")}
	}
	keys, keysReady, err := newKeySource(cfg, client, log)
	if err != nil {
		return err
	}
	verifier, err := verify.New(keys, verify.WithMaxAge(cfg.SignatureMaxAge), verify.WithClockSkew(cfg.ClockSkew))
	if err != nil {
		return err
	}
	log.Info().Str("version", version).Object("config", cfg).Msg("starting")

	if err := a.connect(ctx); err != nil {
		return err
	}
	defer a.closeNATS()
	var stream jetstream.Stream
	if err := retryStartup(ctx, log, "stream", func(ctx context.Context) (err error) {
		stream, err = broker.EnsureStream(ctx, a.js, broker.StreamOptions{
			Name:       cfg.Stream,
			Prefix:     cfg.SubjectPrefix,
			MaxAge:     cfg.StreamMaxAge,
			Replicas:   cfg.StreamReplicas,
			Duplicates: cfg.DuplicateWindow,
		})
		return err
	}); err != nil {
		return err
	}
	batched := broker.BatchPublishing(stream)
	if !batched {
		log.Warn().Str("nats_server_version", a.nc.ConnectedServerVersion()).Str("stream", cfg.Stream).
			Msg("the stream does not allow fast-ingest batches (nats-server 2.14 or later needed): packages are stored in order one message at a time, several times slower")
	}

	handler, err := relay.NewHandler(cfg.WebhookPath, verifier, a.js,
		relay.WithPrefix(cfg.SubjectPrefix),
		relay.WithSourceBase(cfg.UpvestBaseURL),
		relay.WithMaxBodyBytes(cfg.MaxBodyBytes),
		relay.WithAckTimeout(ackWait),
		relay.WithBatchPublishing(batched),
		relay.WithAllowedSources(cfg.AllowedSources),
		relay.WithTrustedProxies(cfg.TrustedProxies),
		relay.WithLogger(log),
		relay.WithRegisterer(a.registry),
	)
	if err != nil {
		return err
	}
	admin := relay.NewAdmin(a.registry)
	admin.AddCheck("nats", broker.Connected(a.nc))
	admin.AddCheck("stream", broker.StreamExists(a.js, cfg.Stream))
	admin.AddCheck("keys", func(context.Context) error {
		if !keysReady() {
			return errors.New("verification keys not loaded yet")
		}
		return nil
	})
	if cfg.WebhookURL != "" {
		if a.keeper, err = a.newKeeper(ctx, client); err != nil {
			return err
		}
		k := a.keeper
		// Test deliveries the keeper asks for may reach any replica; each
		// one sees them all on NATS.
		if _, err := a.nc.Subscribe(subjects.For(cfg.SubjectPrefix, testEventType), func(*nats.Msg) { k.TestArrived() }); err != nil {
			return err
		}
		admin.AddDetail("keeper", func() any { return k.State() })
	} else {
		keeper.RegisterIdle(a.registry)
	}

	if a.ingress, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		return fmt.Errorf("RELAY_LISTEN_ADDR: %w", err)
	}
	if a.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		a.ingress.Close()
		return fmt.Errorf("RELAY_ADMIN_ADDR: %w", err)
	}

	// Everything is set up: start the goroutines, all owned by one group.
	g, gctx := errgroup.WithContext(ctx)
	if r, ok := keys.(*verify.RemoteKeys); ok {
		g.Go(func() error { return r.Run(gctx) })
	}
	if a.keeper != nil {
		g.Go(func() error { return a.keeper.Run(gctx) })
	}
	ingressSrv := relay.NewServer(cfg.ListenAddr, handler, log)
	adminSrv := relay.NewServer(cfg.AdminAddr, admin, log)
	g.Go(func() error { return serveHTTP(ingressSrv, a.ingress) })
	g.Go(func() error { return serveHTTP(adminSrv, a.admin) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), shutdownGrace)
		defer cancel()
		// Ingress first: stop accepting, wait for in-flight packages.
		if err := ingressSrv.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("ingress shutdown did not finish in time")
		}
		return adminSrv.Shutdown(sctx)
	})

	log.Info().
		Str("ingress", a.ingress.Addr().String()+cfg.WebhookPath).
		Str("admin", a.admin.Addr().String()).
		Str("stream", cfg.Stream).
		Bool("control_loop", cfg.WebhookURL != "").
		Msg("relay started")
	if started != nil {
		started(a)
	}
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		log.Info().Msg("relay stopped")
	}
	return err
}

func serveHTTP(s *http.Server, l net.Listener) error {
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// connect starts the embedded server when no URL is configured, then opens
// the connection and the JetStream context.
func (a *app) connect(ctx context.Context) error {
	url := a.cfg.NATSURL
	var opts []broker.ConnectOption
	if url == "" {
		e, err := broker.StartEmbedded(a.cfg.DataDir, a.log, broker.WithSync(a.cfg.EmbeddedSync))
		if err != nil {
			return fmt.Errorf("RELAY_DATA_DIR: %w", err)
		}
		a.embedded = e
		url = e.ClientURL()
		opts = append(opts, broker.WithInProcess(e))
		if err := os.WriteFile(filepath.Join(a.cfg.DataDir, urlFile), []byte(url+"\n"), 0o644); err != nil {
			a.log.Warn().Err(err).Msg("could not record the embedded server URL for relay replay")
		}
	} else if a.cfg.NATSCreds != "" {
		opts = append(opts, broker.WithCredentials(a.cfg.NATSCreds))
	}
	nc, err := broker.Connect(ctx, url, a.log, opts...)
	if err != nil {
		a.closeNATS()
		return err
	}
	a.nc = nc
	if max := nc.MaxPayload(); max < a.cfg.MaxBodyBytes {
		a.log.Warn().Int64("nats_max_payload", max).Int64("max_body_bytes", a.cfg.MaxBodyBytes).
			Msg("NATS max_payload is below RELAY_MAX_BODY_BYTES: a larger single event cannot be stored and its package is answered 503 until max_payload is raised")
	}
	if a.js, err = broker.NewJetStream(nc, ackWait); err != nil {
		a.closeNATS()
		return err
	}
	return nil
}

// closeNATS drains the connection (flushing what is pending) and stops the
// embedded server, if any.
func (a *app) closeNATS() {
	if a.nc != nil {
		closed := make(chan struct{})
		a.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err := a.nc.Drain(); err != nil {
			a.nc.Close()
		} else {
			select {
			case <-closed:
			case <-time.After(shutdownGrace):
				a.nc.Close()
			}
		}
		a.nc = nil
	}
	if a.embedded != nil {
		_ = os.Remove(filepath.Join(a.cfg.DataDir, urlFile))
		a.embedded.Shutdown()
		a.embedded = nil
	}
}

func newUpvestClient(cfg config.Config, log zerolog.Logger) (*upvest.Client, error) {
	key, err := upvest.LoadSigningKey(cfg.UpvestSigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("RELAY_UPVEST_SIGNING_KEY_FILE: %w", err)
	}
	return upvest.New(cfg.UpvestBaseURL, cfg.UpvestClientID, cfg.UpvestClientSecret.Reveal(), key, cfg.UpvestSigningKeyID,
		upvest.WithLogger(log.With().Str("component", "upvest").Logger()))
}

// newKeySource loads the static JWKS file when configured, else fetches
// Upvest's verify keys through the authenticated client.
func newKeySource(cfg config.Config, client *upvest.Client, log zerolog.Logger) (verify.KeySource, func() bool, error) {
	if cfg.VerifyKeysFile != "" {
		keys, err := verify.LoadKeysFile(cfg.VerifyKeysFile)
		if err != nil {
			return nil, nil, fmt.Errorf("RELAY_VERIFY_KEYS_FILE: %w", err)
		}
		return keys, keys.Ready, nil
	}
	if client == nil {
		return nil, nil, usageError{errors.New("config: RELAY_VERIFY_KEYS_FILE: required unless the Upvest client credentials (RELAY_UPVEST_CLIENT_ID, ...) are set to fetch the keys")}
	}
	keys, err := verify.NewRemoteKeys(client.VerifyKeysURL(), client.HTTPClient(),
		verify.WithLogger(log.With().Str("component", "verify_keys").Logger()))
	if err != nil {
		return nil, nil, err
	}
	return keys, keys.Ready, nil
}

func (a *app) newKeeper(ctx context.Context, client *upvest.Client) (*keeper.Keeper, error) {
	var kv jetstream.KeyValue
	if err := retryStartup(ctx, a.log, "lease bucket", func(ctx context.Context) (err error) {
		kv, err = keeper.LeaseBucket(ctx, a.js, a.cfg.Stream+"_keeper", leaseTTL, a.cfg.StreamReplicas)
		return err
	}); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(a.cfg.WebhookURL))
	lease := keeper.NewLease(kv, "leader_"+hex.EncodeToString(sum[:8]), holderID())
	return keeper.New(client, keeper.Desired{
		URL:            a.cfg.WebhookURL,
		Title:          a.cfg.WebhookTitle,
		Types:          a.cfg.WebhookTypes,
		Delay:          a.cfg.WebhookDelay,
		MaxPackageSize: a.cfg.WebhookMaxPackageSize,
	},
		keeper.WithElector(lease, leaseTTL/3),
		keeper.WithInterval(a.cfg.ReconcileInterval),
		keeper.WithTestDelivery(testDeliveryWait),
		keeper.WithLogger(a.log.With().Str("component", "keeper").Logger()),
		keeper.WithRegisterer(a.registry),
	), nil
}

// retryStartup runs one idempotent JetStream set-up call, each attempt
// bounded by jsCallTimeout, until it succeeds, fails for good, or
// startupTimeout passes. Timeouts and missing responders are retried with a
// growing pause: a cluster may still be electing leaders, and replicas
// starting together race to create the same stream (nats-server leaves
// both requests unanswered until they time out).
func retryStartup(ctx context.Context, log zerolog.Logger, what string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, jsCallTimeout)
		err := call(actx)
		acancel()
		if err == nil || !transientJS(err) || ctx.Err() != nil {
			return err
		}
		log.Warn().Err(err).Str("step", what).Dur("retry_in", wait).Msg("JetStream did not answer; retrying")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func transientJS(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// holderID names this process uniquely among replicas: host name plus a
// random suffix.
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = io.ReadFull(rand.Reader, b)
	return host + "-" + hex.EncodeToString(b)
}

// newLogger builds the process logger from RELAY_LOG_LEVEL and
// RELAY_LOG_FORMAT.
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(cfg.LogLevel).With().Timestamp().Logger()
}
