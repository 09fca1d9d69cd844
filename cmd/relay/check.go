package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config"
)

const checkSummary = `Diagnose the configuration in the environment, once: configuration valid;
NATS reachable (server version, JetStream, max_payload against
RELAY_MAX_BODY_BYTES); stream present and matching; Upvest token obtainable;
verification keys loadable; the subscription for RELAY_WEBHOOK_URL present,
enabled and as configured. With --test-delivery it also asks Upvest for a
test delivery and waits for it to reach the stream through a running relay.

One line per check on stdout: "ok: what was found", "failed: why" or
"skipped: why" (skipped: not applicable to this configuration, or an earlier
check it needs failed). With --json, one JSON object per check (JSON lines):
{"check":"nats","status":"ok","detail":"..."}. Exit 0 when no check failed,
1 when one did. With the embedded server (RELAY_NATS_URL empty) it connects
to the server of a relay running on RELAY_DATA_DIR; with none running, the
nats check fails.`

func runCheck(ctx context.Context, args, env []string, stdout, _ io.Writer) error {
	fs := newFlagSet("check", checkSummary, stdout)
	fs.extra = config.Usage()
	asJSON := fs.Bool("json", false, "print JSON lines instead of text")
	test := fs.Bool("test-delivery", false, "ask Upvest for a test delivery and wait until it reaches the stream")
	timeout := fs.Duration("timeout", check.DefaultDeliveryTimeout, "how long --test-delivery waits")
	step := fs.Duration("step-timeout", check.DefaultStepTimeout, "bound on each network step")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := []check.Option{check.WithStepTimeout(*step)}
	if *test {
		opts = append(opts, check.WithTestDelivery(*timeout))
	}
	c, err := check.New(opts...)
	if err != nil {
		return usageError{fmt.Errorf("relay check: %w", err)}
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	c.Run(ctx, env, func(r check.Result) {
		if r.Status == check.Failed {
			failed++
		}
		if *asJSON {
			_ = enc.Encode(r)
			return
		}
		fmt.Fprintln(stdout, r)
	})
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(check.Names()))
	}
	return nil
}
