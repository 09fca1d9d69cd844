package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/relay"
)

// TestDeadlettersCommand drives relay deadletters list, show and redrive
// against a running relay that dead-lettered validly signed bad packages,
// plus one dead letter as an older splitter stored it (a whole package it
// refused), which redrive turns into its events, once.
func TestDeadlettersCommand(t *testing.T) {
	t.Parallel()
	emu, keys := emulatorWithKeysFile(t)
	env := []string{
		"RELAY_VERIFY_KEYS_FILE=" + keys,
		"RELAY_DATA_DIR=" + t.TempDir(),
		"RELAY_LOG_LEVEL=warn",
	}
	a, _ := startApp(t, testConfig(t, env...))

	notJSON := `{"payload":[{"id":`
	noType := `{"id":"nt-1","created_at":"2026-12-01T10:00:00Z","object":{},"webhook_id":"w"}`
	for _, body := range []string{notJSON, `{"payload":[` + noType + `]}`} {
		if got := post(t, emu, []byte(body), a); got != http.StatusOK {
			t.Fatalf("post: %d, want 200", got)
		}
	}
	event := `{"id":"old-1","created_at":"2026-12-01T10:00:00Z","type":"ORDER.FILLED","object":{"id":"o1"},"webhook_id":"wh"}`
	old := nats.NewMsg("upvest._deadletter")
	old.Header.Set(relay.HeaderDeadLetterReason, relay.DeadLetterNoPayload)
	old.Header[relay.HeaderID] = []string{"dl-old"}
	old.Header[relay.HeaderSource] = []string{"https://sandbox.upvest.co/webhooks"}
	old.Data = []byte(`{"payload":[` + event + `]}`)
	ack, err := a.JetStream().PublishMsg(context.Background(), old)
	if err != nil {
		t.Fatal(err)
	}
	oldSeq := ack.Sequence

	deadletters := func(t *testing.T, wantCode int, args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"deadletters"}, args...), configtest.Env(env...), &stdout, &stderr); code != wantCode {
			t.Fatalf("relay deadletters %v: exit %d, want %d: %s", args, code, wantCode, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	t.Run("list", func(t *testing.T) {
		out, _ := deadletters(t, 0, "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "SEQ") {
			t.Fatalf("list printed:\n%s\nwant a header and 3 rows", out)
		}
		for i, want := range []string{"invalid_json", "event_missing_type", "no_payload"} {
			if !strings.Contains(lines[i+1], want) {
				t.Errorf("row %d = %q, want reason %s", i+1, lines[i+1], want)
			}
		}
		out, _ = deadletters(t, 0, "list", "--json", "--since", "2000-01-01")
		var rows []letterOut
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r letterOut
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("list --json line %q: %v", l, err)
			}
			rows = append(rows, r)
		}
		if len(rows) != 3 || rows[0].Size != len(notJSON) || rows[0].Index != nil || rows[1].Index == nil || *rows[1].Index != 0 || rows[0].RequestID == "" {
			t.Errorf("list --json = %+v", rows)
		}
		if out, _ := deadletters(t, 0, "list", "--until", "2000-01-01T00:00"); strings.TrimSpace(out) != strings.SplitN(out, "\n", 2)[0] {
			t.Errorf("list of an empty window printed %q, want only the header", out)
		}
	})

	t.Run("show", func(t *testing.T) {
		out, _ := deadletters(t, 0, "show", "--raw", "1")
		if out != notJSON {
			t.Errorf("show --raw 1 = %q, want the raw body %q", out, notJSON)
		}
		out, _ = deadletters(t, 0, "show", "1")
		if !strings.Contains(out, "Relay-Deadletter-Reason: invalid_json\n") || !strings.HasSuffix(out, "\n\n"+notJSON+"\n") {
			t.Errorf("show 1 printed:\n%s\nwant the headers, a blank line and the raw body", out)
		}
		deadletters(t, 1, "show", "999")
		deadletters(t, 2, "show")
		deadletters(t, 2, "show", "x")
	})

	t.Run("redrive", func(t *testing.T) {
		before := streamMsgs(t, a.JetStream(), "UPVEST")
		out, _ := deadletters(t, 0, "redrive", "--dry-run")
		if !strings.Contains(out, "1 events to store") || streamMsgs(t, a.JetStream(), "UPVEST") != before {
			t.Errorf("redrive --dry-run printed:\n%s", out)
		}
		out, _ = deadletters(t, 0, "redrive")
		if !strings.Contains(out, "3 dead letters: 1 events stored, 0 duplicates (already stored), 2 dead letters still failing") {
			t.Errorf("redrive printed:\n%s", out)
		}
		if got := streamIDs(t, a.JetStream(), "UPVEST"); got["old-1"] != 1 || streamMsgs(t, a.JetStream(), "UPVEST") != before+1 {
			t.Errorf("after redrive the stream holds %v, want old-1 once and the dead letters", got)
		}
		out, _ = deadletters(t, 0, "redrive", "--json", fmt.Sprint(oldSeq))
		var r reportOut
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("redrive --json: %v: %s", err, out)
		}
		if r.Stored != 0 || r.Duplicates != 1 || r.StillFailing != 0 || len(r.DeadLetters) != 1 || r.DeadLetters[0].Seq != oldSeq {
			t.Errorf("second redrive = %+v, want one duplicate", r)
		}
		if streamMsgs(t, a.JetStream(), "UPVEST") != before+1 {
			t.Errorf("second redrive stored something")
		}
		deadletters(t, 1, "redrive", "99999")
	})

	t.Run("mistakes", func(t *testing.T) {
		deadletters(t, 2)
		deadletters(t, 2, "lsit")
		deadletters(t, 0, "--help")
		deadletters(t, 2, "list", "--since", "yesterday")
		deadletters(t, 2, "redrive", "--until", "2000-01-01", "--since", "2001-01-01")
	})
}
