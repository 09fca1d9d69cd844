package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/config"
)

const secretValue = "s3cr3t-Value-42"

// printouts renders v in every way a value typically reaches a log or an
// error.
func printouts(t *testing.T, v any) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	out["Sprint"] = fmt.Sprint(v)
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T) error = %v", v, err)
	}
	out["json"] = string(js)
	var zl bytes.Buffer
	logger := zerolog.New(&zl)
	logger.Info().Interface("v", v).Msg("")
	out["zerolog Interface"] = zl.String()
	var sl bytes.Buffer
	slog.New(slog.NewJSONHandler(&sl, nil)).Info("", "v", v)
	out["slog json"] = sl.String()
	sl.Reset()
	slog.New(slog.NewTextHandler(&sl, nil)).Info("", "v", v)
	out["slog text"] = sl.String()
	return out
}

func TestSecret(t *testing.T) {
	t.Parallel()
	s := config.NewSecret(secretValue)
	if got := s.Reveal(); got != secretValue {
		t.Errorf("Reveal() = %q, want %q", got, secretValue)
	}
	if s.IsZero() {
		t.Errorf("IsZero() = true, want false")
	}
	for how, got := range printouts(t, s) {
		if strings.Contains(got, secretValue) {
			t.Errorf("%s shows the secret: %s", how, got)
		}
		if !strings.Contains(got, "[REDACTED]") {
			t.Errorf("%s = %s, want [REDACTED]", how, got)
		}
	}
	if got, want := fmt.Sprintf("%#v", s), `config.Secret("[REDACTED]")`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	text, _ := s.MarshalText()
	if got, want := string(text), "[REDACTED]"; got != want {
		t.Errorf("MarshalText() = %q, want %q", got, want)
	}
}

func TestSecretEmpty(t *testing.T) {
	t.Parallel()
	var s config.Secret
	if !s.IsZero() {
		t.Errorf("IsZero() = false, want true")
	}
	if got := s.String(); got != "" {
		t.Errorf("String() = %q, want %q", got, "")
	}
	if got := fmt.Sprintf("%v", s); got != "" {
		t.Errorf("%%v = %q, want %q", got, "")
	}
	js, _ := json.Marshal(s)
	if got, want := string(js), `""`; got != want {
		t.Errorf("json = %s, want %s", got, want)
	}
}

// TestConfigNeverShowsSecret prints a loaded Config every way there is and
// checks that the client secret and the NATS and webhook URL credentials
// never show.
func TestConfigNeverShowsSecret(t *testing.T) {
	t.Parallel()
	key := writeFile(t, "key.pem")
	environ := []string{
		"RELAY_UPVEST_CLIENT_ID=client",
		"RELAY_UPVEST_CLIENT_SECRET=" + secretValue,
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + key,
		"RELAY_UPVEST_SIGNING_KEY_ID=kid",
		"RELAY_WEBHOOK_URL=https://user:" + secretValue + "@relay.example.com/hook",
		"RELAY_NATS_URL=nats://" + secretValue + "@a:4222,nats://u:" + secretValue + "@b:4222,c:4222",
	}
	c, err := load(t, environ...)
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}
	for _, v := range []any{c, &c} {
		for how, got := range printouts(t, v) {
			if strings.Contains(got, secretValue) {
				t.Errorf("%s of %T shows the secret: %s", how, v, got)
			}
		}
	}

	var buf bytes.Buffer
	logger := zerolog.New(&buf)
	logger.Info().Object("config", c).Msg("")
	logged := buf.String()
	if strings.Contains(logged, secretValue) {
		t.Errorf("log view shows the secret: %s", logged)
	}
	var line struct {
		Config map[string]string `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %s: %v", logged, err)
	}
	if got, want := len(line.Config), 36; got != want {
		t.Errorf("log view has %d variables, want %d: %s", got, want, logged)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("json.Marshal(Config) error = %v", err)
	}
	var asJSON map[string]string
	if err := json.Unmarshal(js, &asJSON); err != nil {
		t.Fatalf("json.Marshal(Config) = %s: %v", js, err)
	}
	if !maps.Equal(asJSON, line.Config) {
		t.Errorf("json.Marshal(Config) = %s, want the log view %s", js, logged)
	}
	for name, want := range map[string]string{
		"RELAY_UPVEST_CLIENT_SECRET": "[REDACTED]",
		"RELAY_UPVEST_CLIENT_ID":     "client",
		"RELAY_STREAM_REPLICAS":      "1",
		"RELAY_WEBHOOK_TYPES":        "ALL",
		"RELAY_LOG_LEVEL":            "info",
		"RELAY_WEBHOOK_URL":          "https://xxxxx@relay.example.com/hook",
		"RELAY_NATS_URL":             "nats://xxxxx@a:4222,nats://xxxxx@b:4222,c:4222",
	} {
		if got := line.Config[name]; got != want {
			t.Errorf("log view %s = %q, want %q", name, got, want)
		}
	}
}

// TestErrorsNeverShowSecret checks errors that involve the secret or a
// credential-bearing URL.
func TestErrorsNeverShowSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
	}{
		{"misspelt secret variable", []string{"RELAY_UPVEST_CLIENT_SECRT=" + secretValue}},
		{"secret set, other credentials missing", []string{
			"RELAY_WEBHOOK_URL=https://relay.example.com/hook",
			"RELAY_UPVEST_CLIENT_ID=client",
			"RELAY_UPVEST_CLIENT_SECRET=" + secretValue,
		}},
		{"secret set, another variable invalid", []string{
			"RELAY_UPVEST_CLIENT_SECRET=" + secretValue,
			"RELAY_LOG_FORMAT=yaml",
		}},
		{"NATS token in a bad URL", []string{"RELAY_NATS_URL=http://" + secretValue + "@nats:4222"}},
		{"NATS password in an unparsable URL", []string{"RELAY_NATS_URL=nats://u:" + secretValue + "@a b:4222"}},
		{"NATS password where the host should be", []string{"RELAY_NATS_URL=nats://u:" + secretValue}},
		{"webhook URL with password and bad scheme", []string{"RELAY_WEBHOOK_URL=ftp://u:" + secretValue + "@relay.example.com/"}},
		{"base URL with password and query", []string{"RELAY_UPVEST_BASE_URL=https://u:" + secretValue + "@api.upvest.co/?a=b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.environ...)
			if err == nil {
				t.Fatal("Load error = nil, want one")
			}
			if strings.Contains(err.Error(), secretValue) || strings.Contains(fmt.Sprintf("%+v", err), secretValue) {
				t.Errorf("Load error shows the secret: %v", err)
			}
		})
	}
}
