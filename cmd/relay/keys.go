package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config"
)

const keysSummary = `Fetch Upvest's webhook verification keys (GET /auth/verify_keys, signed and
with a token from the configured credentials: RELAY_UPVEST_BASE_URL,
RELAY_UPVEST_CLIENT_ID, RELAY_UPVEST_CLIENT_SECRET,
RELAY_UPVEST_SIGNING_KEY_FILE, RELAY_UPVEST_SIGNING_KEY_ID) and print the JWKS
on stdout, ready for RELAY_VERIFY_KEYS_FILE:

  relay keys > verify-keys.json`

func runKeys(ctx context.Context, args, env []string, stdout, _ io.Writer) error {
	fs := newFlagSet("keys", keysSummary, stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.FromEnviron(env)
	if err != nil {
		return usageError{err}
	}
	if cfg.UpvestClientID == "" {
		return usageError{fmt.Errorf("config: RELAY_UPVEST_CLIENT_ID: required by relay keys")}
	}
	// The same client serve builds, wired here from the configuration.
	client, err := check.NewUpvestClient(cfg)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	body, err := check.FetchKeys(ctx, client)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}
