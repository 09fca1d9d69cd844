package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	natsjs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/subjects"
)

// replayOptions are relay replay's flags, parsed.
type replayOptions struct {
	since, until time.Time // zero: unbounded
	subject      string
	republish    string
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", "Read events back from stream retention, as JSON lines of structured CloudEvents\non stdout, or re-published under another prefix. The source stream is never\nmodified and no durable consumer is left behind. Times are the stream's\nstorage times.", stdout)
	since := fs.String("since", "", "start: RFC 3339 time, or a duration back from now such as 2h (default: the oldest retained event)")
	until := fs.String("until", "", "end, same forms as --since (default: the newest event when replay starts)")
	subject := fs.String("subject", "", "subject filter, wildcards allowed (default: every subject of the stream)")
	republish := fs.String("republish", "", "re-publish each message with its headers and data to PREFIX.<original subject> instead of printing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return usageError{err}
	}
	now := time.Now()
	var o replayOptions
	if o.since, err = parseWhen(*since, now); err != nil {
		return usageError{fmt.Errorf("relay replay: --since: %w", err)}
	}
	if o.until, err = parseWhen(*until, now); err != nil {
		return usageError{fmt.Errorf("relay replay: --until: %w", err)}
	}
	if !o.since.IsZero() && !o.until.IsZero() && o.until.Before(o.since) {
		return usageError{errors.New("relay replay: --until is before --since")}
	}
	o.subject = *subject
	if o.subject == "" {
		o.subject = subjects.Stream(cfg.SubjectPrefix)
	}
	if o.republish = *republish; o.republish != "" {
		if !subjects.ValidPrefix(o.republish) {
			return usageError{fmt.Errorf("relay replay: --republish: %q is not a valid subject prefix", o.republish)}
		}
		if o.republish == cfg.SubjectPrefix || strings.HasPrefix(o.republish, cfg.SubjectPrefix+".") {
			return usageError{fmt.Errorf("relay replay: --republish: %q lies inside the source stream's subjects %s", o.republish, subjects.Stream(cfg.SubjectPrefix))}
		}
	}
	log := newLogger(cfg, stderr)

	nc, stop, err := replayConn(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	n, skipped, err := replay(ctx, js, cfg.Stream, o, func(m jetstream.Msg) error {
		if o.republish != "" {
			return nc.PublishMsg(&nats.Msg{Subject: o.republish + "." + m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		line, err := structuredJSON(ctx, m)
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(line, '\n'))
		return err
	})
	if err == nil && o.republish != "" {
		err = nc.FlushTimeout(10 * time.Second)
	}
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Int("messages", n).Int("skipped_not_cloudevents", skipped).Msg("replay done")
	return err
}

// errNotCloudEvent marks a retained message that is not a CloudEvent
// (a dead letter); printing skips it, republishing does not.
var errNotCloudEvent = errors.New("not a CloudEvent")

// replay walks the stream from o.since to o.until (or to the last message
// present when it starts) with an ordered, ephemeral consumer, calling
// emit for each message matching o.subject. It returns how many messages
// were emitted and how many were skipped as not CloudEvents.
func replay(ctx context.Context, js jetstream.JetStream, stream string, o replayOptions, emit func(jetstream.Msg) error) (n, skipped int, err error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return 0, 0, nil
	}
	// An ordered consumer is ephemeral; it is deleted when replay ends and,
	// should replay die first, removed by the server after a short idle time.
	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{o.subject},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 10 * time.Second,
	}
	if !o.since.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.since
	}
	c, err := s.OrderedConsumer(ctx, cc)
	if err != nil {
		return 0, 0, fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, c.CachedInfo().Name)
	}()
	ci, err := c.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("consumer: %w", err)
	}
	if ci.NumPending == 0 {
		return 0, 0, nil
	}
	noResponders := 0
	for {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if errors.Is(err, nats.ErrNoResponders) && noResponders < 10 {
			// A replicated stream's fresh consumer may not be placed yet.
			noResponders++
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return n, skipped, fmt.Errorf("fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return n, skipped, err
			}
			if !o.until.IsZero() && md.Timestamp.After(o.until) {
				return n, skipped, nil
			}
			switch err := emit(m); {
			case errors.Is(err, errNotCloudEvent):
				skipped++
			case err != nil:
				return n, skipped, err
			default:
				n++
			}
			if md.Sequence.Stream >= last || md.NumPending == 0 {
				return n, skipped, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return n, skipped, fmt.Errorf("fetch: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return n, skipped, err
		}
		if got == 0 {
			// Nothing more arrived within the wait: the rest of the window
			// was removed (age limit) while we read.
			return n, skipped, nil
		}
	}
}

// structuredJSON decodes a binary-mode CloudEvent with the CloudEvents SDK
// and renders it in structured JSON, data as JSON.
func structuredJSON(ctx context.Context, m jetstream.Msg) ([]byte, error) {
	msg := natsjs.NewMessage(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if msg.ReadEncoding() != binding.EncodingBinary {
		return nil, errNotCloudEvent
	}
	ev, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCloudEvent, err)
	}
	return json.Marshal(ev)
}

// parseWhen accepts an RFC 3339 time or a duration back from now; "" is
// the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration such as 2h", s)
	}
	return now.Add(-d), nil
}

// replayConn connects to RELAY_NATS_URL, or, with the embedded default, to
// the embedded server of a relay running on the same data dir, or else
// starts an embedded server on that data dir just for the replay.
func replayConn(ctx context.Context, cfg config.Config, log zerolog.Logger) (*nats.Conn, func(), error) {
	if cfg.NATSURL != "" {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("upvest-relay replay"), credsOption(cfg.NATSCreds))
		if err != nil {
			return nil, nil, fmt.Errorf("RELAY_NATS_URL: %w", err)
		}
		return nc, nc.Close, nil
	}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, service.URLFile)); err == nil {
		if nc, err := nats.Connect(strings.TrimSpace(string(b)), nats.Name("upvest-relay replay"), nats.Timeout(2*time.Second)); err == nil {
			return nc, nc.Close, nil
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		return nil, nil, fmt.Errorf("RELAY_DATA_DIR: no relay data under %s", cfg.DataDir)
	}
	e, err := broker.StartEmbedded(cfg.DataDir, log.Level(zerolog.WarnLevel), broker.WithPort(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}
	nc, err := nats.Connect(e.ClientURL(), nats.InProcessServer(e), nats.Name("upvest-relay replay"))
	if err != nil {
		e.Shutdown()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); e.Shutdown() }, nil
}

func credsOption(path string) nats.Option {
	if path == "" {
		return func(*nats.Options) error { return nil }
	}
	return nats.UserCredentials(path)
}
