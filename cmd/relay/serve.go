package main

import (
	"context"
	"io"

	"github.com/upvest-relay/upvest-relay/config"
)

// runServe runs the relay on the RELAY_* configuration until ctx ends
// (SIGINT/SIGTERM), then drains and returns nil.
func runServe(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "Run the relay: webhook ingress, publishing to JetStream, and the\nsubscription control loop. Configured by environment variables:", stdout)
	fs.extra = config.Usage()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.FromEnviron(env)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(cfg, stderr)
	tp, stopTracing, err := newTracing(ctx, env, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	svc, err := newService(cfg, log, tp)
	if err != nil {
		return err
	}
	log.Info().Str("version", version).Object("config", cfg).Msg("starting")
	return svc.Run(ctx)
}
