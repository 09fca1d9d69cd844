package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/subjects"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// The relay's defaults from docs/contract.md, so both runs see the stream the
// relay would create.
const (
	streamName  = "UPVEST"
	prefix      = relay.DefaultPrefix
	webhookPath = "/webhooks/upvest"
	webhookID   = "3f1c5a2e-7b9d-4e0a-9c61-2d8b7f4a1e55"
	maxAge      = 720 * time.Hour
	dupWindow   = 2 * time.Hour
	// signatureLife is how long an emulator signature stays valid
	// (expires = created + 60 s; the verifier allows its clock skew on top).
	signatureLife = 60 * time.Second
)

// config is one invocation of the tool.
type config struct {
	Packages         int    // timed packages per run
	EventsPerPackage int    // K
	Concurrency      int    // C publishers / HTTP clients
	Warmup           int    // untimed packages before each run's clock starts
	Seed             uint64 // event generator seed
	Diagnostic       bool   // also run the relay without signature check
}

// result is one timed run.
type result struct {
	Name    string
	Events  int
	Elapsed time.Duration
	Latency []time.Duration // per package, sorted
	CPU     time.Duration   // user+system CPU of the whole process while timed
}

func (r *result) rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// pct is the p-th percentile (0..1] of the per-package latencies.
func (r *result) pct(p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(r.Latency)))) - 1
	return r.Latency[min(max(i, 0), len(r.Latency)-1)]
}

func (r *result) cpuPerEvent() time.Duration { return r.CPU / time.Duration(r.Events) }

// report is everything one invocation measured.
type report struct {
	Config   config
	Procs    int
	Raw      *result
	Relay    *result
	NoVerify *result       // nil unless Config.Diagnostic
	Verify   time.Duration // one Verify call, single goroutine, mean
	Sign     time.Duration // wall time to sign every package (not timed)
}

// pkg is one webhook package: its body, the messages an ideal relay
// publishes for it, and the headers Upvest's signature put on it.
type pkg struct {
	body   []byte
	msgs   []*nats.Msg
	header http.Header
}

// run starts an embedded JetStream server and the emulator, measures the
// raw floor, then the relay (and optionally the relay without signature
// check), checking every answer and the stored count of each run.
func run(ctx context.Context, cfg config, log zerolog.Logger) (*report, error) {
	if cfg.Packages < 1 || cfg.EventsPerPackage < 1 || cfg.Concurrency < 1 || cfg.Warmup < 0 {
		return nil, errors.New("packages, events-per-package and concurrency must be positive, warmup not negative")
	}
	dir, err := os.MkdirTemp("", "relay-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := broker.StartEmbedded(dir, log.Level(zerolog.WarnLevel), broker.WithPort(-1))
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	nc, err := broker.Connect(ctx, srv.ClientURL(), log.Level(zerolog.WarnLevel), broker.WithName("relay-load"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := broker.NewJetStream(nc, relay.DefaultAckTimeout)
	if err != nil {
		return nil, err
	}
	emu, err := emulator.New()
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	jwks, err := emu.JWKS()
	if err != nil {
		return nil, err
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		return nil, err
	}
	verifier, err := verify.New(keys)
	if err != nil {
		return nil, err
	}

	rep := &report{Config: cfg, Procs: runtime.GOMAXPROCS(0)}
	pkgs, err := makePackages(emulator.NewGenerator(cfg.Seed), cfg.Warmup+cfg.Packages, cfg.EventsPerPackage)
	if err != nil {
		return nil, err
	}
	log.Info().Int("packages", len(pkgs)).Int("bytes_per_package", len(pkgs[0].body)).Msg("events generated")

	rep.Raw, err = measure(ctx, js, cfg, "raw JetStream (floor)", func(ctx context.Context, i int) error {
		return publishRaw(js, pkgs[i].msgs)
	})
	if err != nil {
		return nil, err
	}
	log.Info().Float64("events_per_s", rep.Raw.rate()).Msg("raw floor done")

	// Sign every package now, before the relay's clock starts: signing is
	// Upvest's cost. The signatures expire 60 s later.
	signedAt := time.Now()
	if _, err := parallel(ctx, len(pkgs), cfg.Concurrency, func(_ context.Context, i int) error {
		return sign(emu, &pkgs[i])
	}); err != nil {
		return nil, err
	}
	rep.Sign = time.Since(signedAt)
	if rep.Verify, err = verifyCost(ctx, verifier, pkgs[:min(len(pkgs), 100)]); err != nil {
		return nil, err
	}
	log.Info().Int64("sign_ms", rep.Sign.Milliseconds()).Float64("verify_each_ms", float64(rep.Verify.Microseconds())/1000).Msg("packages signed")

	if rep.Relay, err = measureRelay(ctx, js, cfg, "relay", verifier, pkgs, log); err != nil {
		return nil, err
	}
	if d := time.Since(signedAt); d > signatureLife {
		log.Warn().Int64("since_signing_ms", d.Milliseconds()).Msg("the relay run outlived the signatures' 60 s; use fewer packages")
	}
	log.Info().Float64("events_per_s", rep.Relay.rate()).Msg("relay done")

	if cfg.Diagnostic {
		acceptAll := verifierFunc(func(context.Context, *http.Request, []byte) error { return nil })
		if rep.NoVerify, err = measureRelay(ctx, js, cfg, "relay, no signature check (diagnostic)", acceptAll, pkgs, log); err != nil {
			return nil, err
		}
		log.Info().Float64("events_per_s", rep.NoVerify.rate()).Msg("diagnostic run done")
	}
	return rep, nil
}

// verifierFunc adapts a function to relay.Verifier. It exists only for the
// labelled diagnostic run; the relay itself never runs without a
// verify.Verifier.
type verifierFunc func(ctx context.Context, r *http.Request, body []byte) error

func (f verifierFunc) Verify(ctx context.Context, r *http.Request, body []byte) error {
	return f(ctx, r, body)
}

// wireEvent is an element of a package's payload, in Upvest's field order.
type wireEvent struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	Type      string          `json:"type"`
	Object    json.RawMessage `json:"object"`
	WebhookID string          `json:"webhook_id"`
}

// makePackages generates n packages of k realistic events, each with the
// CloudEvent messages the relay publishes for it (docs/contract.md headers).
func makePackages(g *emulator.Generator, n, k int) ([]pkg, error) {
	pkgs := make([]pkg, n)
	for i := range pkgs {
		raws := make([][]byte, k)
		msgs := make([]*nats.Msg, k)
		for j, e := range g.Batch(k) {
			obj, err := json.Marshal(e.Object)
			if err != nil {
				return nil, err
			}
			var o struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(obj, &o)
			w := wireEvent{e.ID, e.CreatedAt.UTC().Format(time.RFC3339Nano), e.Type, obj, webhookID}
			if raws[j], err = json.Marshal(w); err != nil {
				return nil, err
			}
			h := nats.Header{
				relay.HeaderSpecVersion:     {"1.0"},
				relay.HeaderID:              {w.ID},
				relay.HeaderSource:          {relay.DefaultSourceBase + "/webhooks/" + webhookID},
				relay.HeaderType:            {subjects.EventType(w.Type)},
				relay.HeaderTime:            {w.CreatedAt},
				relay.HeaderSubject:         {o.ID},
				relay.HeaderDataContentType: {"application/json"},
				relay.HeaderContentType:     {"application/json"},
				relay.HeaderMsgID:           {w.ID},
			}
			msgs[j] = &nats.Msg{Subject: subjects.For(prefix, w.Type), Header: h, Data: raws[j]}
		}
		body := append([]byte(`{"payload":[`), bytes.Join(raws, []byte(","))...)
		pkgs[i] = pkg{body: append(body, "]}"...), msgs: msgs}
	}
	return pkgs, nil
}

// sign signs p as Upvest signs a delivery to the webhook path; the
// signature does not cover the host, so any relay address accepts it.
func sign(emu *emulator.Server, p *pkg) error {
	req, err := http.NewRequest(http.MethodPost, "http://relay"+webhookPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := emu.SignDelivery(req, p.body); err != nil {
		return err
	}
	p.header = req.Header
	return nil
}

// verifyCost is the mean time of one Verify, on one goroutine.
func verifyCost(ctx context.Context, v *verify.Verifier, pkgs []pkg) (time.Duration, error) {
	start := time.Now()
	for _, p := range pkgs {
		req, err := http.NewRequest(http.MethodPost, "http://relay"+webhookPath, nil)
		if err != nil {
			return 0, err
		}
		req.Header = p.header
		if err := v.Verify(ctx, req, p.body); err != nil {
			return 0, fmt.Errorf("verifying an emulator signature: %w", err)
		}
	}
	return time.Since(start) / time.Duration(len(pkgs)), nil
}

// publishRaw is what an ideal relay does for one package: publish every
// message asynchronously, then wait for every PubAck.
func publishRaw(js jetstream.JetStream, msgs []*nats.Msg) error {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				return fmt.Errorf("unexpected duplicate %s", f.Msg().Header.Get(nats.MsgIdHdr))
			}
		case err := <-f.Err():
			return err
		}
	}
	return nil
}

// measureRelay runs a relay.Handler with verifier v behind a real HTTP
// server on loopback, wired as cmd/relay wires it (a logger and metrics,
// both costing what they cost in production), and POSTs every package.
func measureRelay(ctx context.Context, js jetstream.JetStream, cfg config, name string, v relay.Verifier, pkgs []pkg, log zerolog.Logger) (*result, error) {
	h, err := relay.NewHandler(webhookPath, v, js,
		relay.WithLogger(zerolog.New(io.Discard).Level(zerolog.InfoLevel)),
		relay.WithRegisterer(prometheus.NewRegistry()),
		relay.WithMaxInFlight(max(relay.DefaultMaxInFlight, cfg.Concurrency)))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := relay.NewServer(ln.Addr().String(), h, log)
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	url := "http://" + ln.Addr().String() + webhookPath
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	return measure(ctx, js, cfg, name, func(ctx context.Context, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(pkgs[i].body))
		if err != nil {
			return err
		}
		req.Header = pkgs[i].header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("package %d: status %d: %s", i, resp.StatusCode, answer)
		}
		return nil
	})
}

// measure creates the stream, sends the warm-up packages, then times the
// rest, and checks that the stream holds exactly one message per event
// before deleting it, so each run starts from the same empty stream.
func measure(ctx context.Context, js jetstream.JetStream, cfg config, name string, send func(context.Context, int) error) (*result, error) {
	stream, err := broker.EnsureStream(ctx, js, broker.StreamOptions{
		Name: streamName, Prefix: prefix, MaxAge: maxAge, Replicas: 1, Duplicates: dupWindow,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), streamName) }()

	if _, err := parallel(ctx, cfg.Warmup, cfg.Concurrency, send); err != nil {
		return nil, fmt.Errorf("%s warm-up: %w", name, err)
	}
	runtime.GC()
	cpu0 := cpuTime()
	start := time.Now()
	lat, err := parallel(ctx, cfg.Packages, cfg.Concurrency, func(ctx context.Context, i int) error {
		return send(ctx, cfg.Warmup+i)
	})
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	want := uint64((cfg.Warmup + cfg.Packages) * cfg.EventsPerPackage)
	if info.State.Msgs != want {
		return nil, fmt.Errorf("%s: stream holds %d messages, want %d", name, info.State.Msgs, want)
	}
	slices.Sort(lat)
	return &result{Name: name, Events: cfg.Packages * cfg.EventsPerPackage, Elapsed: elapsed, Latency: lat, CPU: cpu}, nil
}

// parallel calls do for 0..n-1 from c goroutines and returns each call's
// duration; the first error stops the rest.
func parallel(ctx context.Context, n, c int, do func(context.Context, int) error) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				t := time.Now()
				if err := do(ctx, i); err != nil {
					cancel(err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return lat, nil
}
