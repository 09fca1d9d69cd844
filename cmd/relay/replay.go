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
	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/subjects"
)

// replayOptions are relay replay's flags, parsed.
type replayOptions struct {
	since, until time.Time // zero: unbounded
	subject      string
	republish    string
}

func runReplay(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", "Read events back from stream retention, as JSON lines of structured CloudEvents\non stdout, or re-published under another prefix. The source stream is never\nmodified and no durable consumer is left behind. Times are the stream's\nstorage times.", stdout)
	since := fs.String("since", "", "start: "+whenHelp+" (default: the oldest retained event)")
	until := fs.String("until", "", "end, same forms as --since (default: the newest event when replay starts)")
	subject := fs.String("subject", "", "subject filter, wildcards allowed (default: every subject of the stream)")
	republish := fs.String("republish", "", "re-publish each message with its headers and data to PREFIX.<original subject> instead of printing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.FromEnviron(env)
	if err != nil {
		return usageError{err}
	}
	var o replayOptions
	if o.since, o.until, err = parseWindow("relay replay", *since, *until, time.Now()); err != nil {
		return err
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

	nc, stop, err := streamConn(ctx, cfg, log, "replay")
	if err != nil {
		return err
	}
	defer stop()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	w := broker.Window{Subjects: []string{o.subject}, Since: o.since, Until: o.until}
	var n, skipped int
	err = broker.Walk(ctx, js, cfg.Stream, w, func(m jetstream.Msg) error {
		if o.republish != "" {
			n++
			return nc.PublishMsg(&nats.Msg{Subject: o.republish + "." + m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		line, err := structuredJSON(ctx, m)
		if errors.Is(err, errNotCloudEvent) {
			skipped++
			return nil
		}
		if err != nil {
			return err
		}
		n++
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

// errNotCloudEvent marks a retained message that is not a CloudEvent;
// printing skips it, republishing does not.
var errNotCloudEvent = errors.New("not a CloudEvent")

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

// whenHelp documents the forms parseWhen accepts, for flag help.
const whenHelp = "an RFC 3339 time (2026-12-01T10:00:00Z), a date or a date and time without zone, taken as UTC (2026-12-01, 2026-12-01T10:00), or a duration back from now (2h)"

// parseWindow parses the --since and --until flags of command: either may
// be empty (unbounded), and until must not be before since.
func parseWindow(command, since, until string, now time.Time) (from, to time.Time, err error) {
	if from, err = parseWhen(since, now); err != nil {
		return from, to, usageError{fmt.Errorf("%s: --since: %w", command, err)}
	}
	if to, err = parseWhen(until, now); err != nil {
		return from, to, usageError{fmt.Errorf("%s: --until: %w", command, err)}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return from, to, usageError{fmt.Errorf("%s: --until is before --since", command)}
	}
	return from, to, nil
}

// parseWhen accepts an RFC 3339 time, a plain date or a date and time
// without a zone (taken as UTC), or a duration back from now; "" is the
// zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.DateOnly, "2006-01-02T15:04", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is not a time (2026-12-01T10:00:00Z, or 2026-12-01 or 2026-12-01T10:00 in UTC) nor a positive duration such as 2h", s)
	}
	return now.Add(-d), nil
}

// streamConn connects a command named name to the relay's NATS: to
// RELAY_NATS_URL when set; else to the embedded server of a relay running
// on RELAY_DATA_DIR; else, when that data dir holds a stopped relay's
// store, to an embedded server started on it just for the command (quietly:
// its log lines are not the command's output). stop closes what it opened.
func streamConn(ctx context.Context, cfg config.Config, log zerolog.Logger, name string) (nc *nats.Conn, stop func(), err error) {
	quiet := log.Level(zerolog.ErrorLevel)
	opts := []broker.ConnectOption{
		broker.WithName("upvest-relay " + name),
		broker.WithNATSOptions(nats.RetryOnFailedConnect(false), nats.Timeout(5*time.Second)),
	}
	if cfg.NATSURL != "" {
		nc, err := broker.Connect(ctx, cfg.NATSURL, quiet, append(opts, check.NATSOptions(cfg)...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("RELAY_NATS_URL: %w", err)
		}
		return nc, nc.Close, nil
	}
	if url, err := broker.EmbeddedURL(cfg.DataDir); err == nil {
		if nc, err := broker.Connect(ctx, url, quiet, opts...); err == nil {
			return nc, nc.Close, nil
		}
		// A stale record: the relay that wrote it is gone.
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		return nil, nil, fmt.Errorf("RELAY_NATS_URL is empty and RELAY_DATA_DIR %s holds no relay (neither a running one nor a stopped one's data): set RELAY_NATS_URL, or RELAY_DATA_DIR to a relay's data dir", cfg.DataDir)
	}
	e, err := broker.StartEmbedded(cfg.DataDir, quiet, broker.WithPort(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}
	nc, err = broker.Connect(ctx, e.ClientURL(), quiet, append(opts, broker.WithInProcess(e))...)
	if err != nil {
		e.Shutdown()
		return nil, nil, fmt.Errorf("RELAY_DATA_DIR: %w", err)
	}
	return nc, func() { nc.Close(); e.Shutdown() }, nil
}
