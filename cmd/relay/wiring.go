package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/tracing"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/verify"
)

// newService maps the configuration onto a relay service, traced through
// tp (nil: off). It reads the files the configuration names (keys), so a
// mistake there fails before anything is started or written.
func newService(cfg config.Config, log zerolog.Logger, tp trace.TracerProvider) (*service.Service, error) {
	sc := service.Config{
		Version:         version,
		TracerProvider:  tp,
		ListenAddr:      cfg.ListenAddr,
		AdminAddr:       cfg.AdminAddr,
		TLSCertFile:     cfg.TLSCertFile,
		TLSKeyFile:      cfg.TLSKeyFile,
		WebhookPath:     cfg.WebhookPath,
		SubjectPrefix:   cfg.SubjectPrefix,
		SourceBase:      cfg.UpvestBaseURL,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		AllowedSources:  cfg.AllowedSources,
		TrustedProxies:  cfg.TrustedProxies,
		SignatureMaxAge: cfg.SignatureMaxAge,
		ClockSkew:       cfg.ClockSkew,
		NATSURL:         cfg.NATSURL,
		NATS:            check.NATSOptions(cfg),
		DataDir:         cfg.DataDir,
		EmbeddedSync:    cfg.EmbeddedSync,
		Stream: broker.StreamOptions{
			Name:       cfg.Stream,
			Prefix:     cfg.SubjectPrefix,
			MaxAge:     cfg.StreamMaxAge,
			Replicas:   cfg.StreamReplicas,
			Duplicates: cfg.DuplicateWindow,
		},
		ReconcileInterval: cfg.ReconcileInterval,
	}
	var client *upvest.Client
	if cfg.UpvestClientID != "" {
		var err error
		client, err = check.NewUpvestClient(cfg, upvest.WithLogger(log.With().Str("component", "upvest").Logger()))
		if err != nil {
			return nil, usageError{fmt.Errorf("config: %w", err)}
		}
	}
	if cfg.WebhookURL != "" {
		sc.Upvest = client
		sc.Subscription = keeper.Desired{
			URL:            cfg.WebhookURL,
			Title:          cfg.WebhookTitle,
			Types:          cfg.WebhookTypes,
			Delay:          cfg.WebhookDelay,
			MaxPackageSize: cfg.WebhookMaxPackageSize,
		}
	}
	keys, err := newKeys(cfg, client, log)
	if err != nil {
		return nil, err
	}
	sc.Keys = keys
	return service.New(sc, log)
}

// newKeys loads the static JWKS file when configured, else fetches
// Upvest's verification keys through the authenticated client.
func newKeys(cfg config.Config, client *upvest.Client, log zerolog.Logger) (service.Keys, error) {
	if cfg.VerifyKeysFile != "" {
		keys, err := verify.LoadKeysFile(cfg.VerifyKeysFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("config: RELAY_VERIFY_KEYS_FILE: %w", err)}
		}
		return keys, nil
	}
	if client == nil {
		return nil, usageError{fmt.Errorf("config: %w", check.ErrNoKeySource)}
	}
	return verify.NewRemoteKeys(client.VerifyKeysURL(), client.HTTPClient(),
		verify.WithLogger(log))
}

// newLogger builds the process logger from RELAY_LOG_LEVEL and
// RELAY_LOG_FORMAT.
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(cfg.LogLevel).With().Timestamp().Logger()
}

// newTracing builds the tracer provider from the OTEL_* variables of env
// (off unless they enable an exporter) and its shutdown, which flushes.
// Exports that fail are logged on log.
func newTracing(ctx context.Context, env []string, log zerolog.Logger) (trace.TracerProvider, func(), error) {
	tp, shutdown, err := tracing.New(ctx, lookupIn(env), version,
		tracing.WithErrorHandler(func(err error) { log.Warn().Err(err).Msg("traces not exported") }))
	if err != nil {
		return nil, nil, usageError{err}
	}
	return tp, func() { _ = shutdown(context.WithoutCancel(ctx)) }, nil
}

// lookupIn looks names up in env, "NAME=value" entries, the first of a
// name counting, as os.LookupEnv does in the process environment.
func lookupIn(env []string) tracing.Lookup {
	return func(name string) (string, bool) {
		for _, kv := range env {
			if n, v, ok := strings.Cut(kv, "="); ok && n == name {
				return v, true
			}
		}
		return "", false
	}
}
