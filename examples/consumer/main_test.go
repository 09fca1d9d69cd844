package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// TestConsumerCommandHandlesEachOrderOnce runs the emulator delivering signed
// packages to the real relay handler, which publishes into an embedded
// JetStream; then a copy of one order event (as relay replay --republish
// makes, without a dedup id) and a handler failing its first attempt make
// JetStream deliver some events twice. Every order is handled exactly once,
// and nothing else is handled.
func TestConsumerCommandHandlesEachOrderOnce(t *testing.T) {
	ctx := context.Background()
	emu, err := emulator.New(emulator.WithTimeScale(0.001))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	_, _, js := brokertest.New(t)
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour}); err != nil {
		t.Fatal(err)
	}
	jwks, _ := emu.JWKS()
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	// The relay traces, so every order carries its package's trace context.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h, err := relay.NewHandler("/webhooks/upvest", v, js, relay.WithSourceBase(emu.URL()), relay.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	wh, err := emu.CreateWebhook(tenant.ClientID, emulator.Webhook{Title: "example", URL: "http://" + ln.Addr().String() + "/webhooks/upvest", Enabled: true,
		Config: emulator.WebhookConfig{Delay: "1s", MaxPackageSize: 1048576}})
	if err != nil {
		t.Fatal(err)
	}

	gen := emulator.NewGenerator(7)
	var events []emulator.Event
	for range 3 {
		events = append(events, gen.OrderFlow()...)
		events = append(events, gen.Onboarding()...)
	}
	orders := map[string]bool{}
	for _, e := range events {
		if strings.HasPrefix(e.Type, "ORDER.") {
			orders[e.ID] = true
		}
	}
	if len(orders) == 0 {
		t.Fatal("generator made no orders")
	}
	if err := emu.Publish(tenant.ClientID, events...); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := emu.WaitDelivered(wctx, wh.ID, len(events)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "UPVEST")
	if err != nil {
		t.Fatal(err)
	}
	// A second copy of an order in the stream, under a fresh dedup id.
	last, err := s.GetLastMsgForSubject(ctx, "upvest.order.>")
	if err != nil {
		t.Fatal(err)
	}
	hdr := nats.Header{}
	for k, vs := range last.Header {
		if k != nats.MsgIdHdr {
			hdr[k] = vs
		}
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: last.Subject, Header: hdr, Data: last.Data}); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		handled  = map[string]int{}
		failed   = map[string]bool{}
		traces   = map[string]trace.TraceID{} // event id -> trace the handler continues
		attempts int
	)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(rctx, js, Options{}, NewMemoryDeduper(), func(ctx context.Context, ev event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsRemote() {
				traces[ev.ID()] = sc.TraceID()
			}
			attempts++
			if attempts%3 == 1 && !failed[ev.ID()] { // every third event fails once
				failed[ev.ID()] = true
				return context.DeadlineExceeded
			}
			handled[ev.ID()]++
			return nil
		})
	}()
	testkit.Eventually(t, 20*time.Second, "not every order handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= len(orders)
	})
	// The consumer has acknowledged everything it was given: nothing is
	// pending or waiting for an ack.
	testkit.Eventually(t, 10*time.Second, "consumer still has unacknowledged messages", func() bool {
		c, err := s.Consumer(ctx, "example-orders")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range handled {
		if !orders[id] {
			t.Errorf("handled %s, which is not an order", id)
		}
		if n != 1 {
			t.Errorf("order %s handled %d times, want 1", id, n)
		}
	}
	if len(handled) != len(orders) || len(failed) == 0 {
		t.Errorf("handled %d orders (want %d), %d failed once (want some)", len(handled), len(orders), len(failed))
	}
	// Every order's handler continued a trace the relay recorded.
	recorded := map[trace.TraceID]bool{}
	for _, s := range spans.Ended() {
		recorded[s.SpanContext().TraceID()] = true
	}
	for id := range handled {
		if tid, ok := traces[id]; !ok || !recorded[tid] {
			t.Errorf("order %s: handler context carries trace %v (present %v), not one the relay recorded", id, tid, ok)
		}
	}
}
