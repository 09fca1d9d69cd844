package emulator

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestGeneratorReproducible(t *testing.T) {
	start := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	a := NewGenerator(42, GenerateFrom(start))
	b := NewGenerator(42, GenerateFrom(start))
	c := NewGenerator(43, GenerateFrom(start))
	for i := range 200 {
		ea, eb, ec := a.Next(), b.Next(), c.Next()
		ja, _ := json.Marshal(ea)
		jb, _ := json.Marshal(eb)
		jc, _ := json.Marshal(ec)
		if string(ja) != string(jb) {
			t.Fatalf("step %d: same seed differs:\n%s\n%s", i, ja, jb)
		}
		if i == 0 && string(ja) == string(jc) {
			t.Error("different seeds gave the same first event")
		}
	}
}

var (
	amountRE = regexp.MustCompile(`^-?\d+\.\d{2}$`)
	isinRE   = regexp.MustCompile(`^[A-Z]{2}[A-Z0-9]{9}\d$`)
)

func TestGeneratorEveryFamily(t *testing.T) {
	g := NewGenerator(7)
	for _, fam := range Families() {
		t.Run(fam, func(t *testing.T) {
			for range 10 {
				e := g.Of(fam)
				checkEvent(t, e)
				if e.Family() != fam {
					t.Errorf("type %s, want family %s", e.Type, fam)
				}
				if !slices.Contains(states(fam), strings.TrimPrefix(e.Type, fam+".")) {
					t.Errorf("state of %s not among %v", e.Type, states(fam))
				}
			}
		})
	}
	if e := g.Of("SPACESHIP"); e.Type != "SPACESHIP.UPDATED" {
		t.Errorf("unknown family: %s", e.Type)
	}
}

// checkEvent checks that an event looks like Upvest's.
func checkEvent(t *testing.T, e Event) {
	t.Helper()
	if _, err := uuid.Parse(e.ID); err != nil {
		t.Errorf("event id %q: %v", e.ID, err)
	}
	if e.CreatedAt.IsZero() || e.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at %v", e.CreatedAt)
	}
	fam, state, ok := strings.Cut(e.Type, ".")
	if !ok || fam == "" || state == "" || strings.ToUpper(e.Type) != e.Type {
		t.Errorf("type %q is not FAMILY.STATE", e.Type)
	}
	raw, err := json.Marshal(e.Object)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("object %s: %v", raw, err)
	}
	id, hasID := obj["id"].(string)
	if fam == "POSITION" {
		if hasID {
			t.Errorf("POSITION object has an id: %s", raw)
		}
	} else if _, err := uuid.Parse(id); err != nil {
		t.Errorf("%s object id %q: %s", e.Type, id, raw)
	}
	for k, v := range obj {
		s, _ := v.(string)
		switch {
		case strings.HasSuffix(k, "_id") && k != "instrument_id" && k != "mandate_id" || k == "mandate_id":
			if _, err := uuid.Parse(s); err != nil {
				t.Errorf("%s: %s = %v is not a UUID", e.Type, k, v)
			}
		case k == "instrument_id" || k == "isin":
			if !validISIN(s) {
				t.Errorf("%s: %s = %v is not a valid ISIN", e.Type, k, v)
			}
		case k == "amount" || k == "cash_amount" || k == "balance" || k == "share_price" || k == "total_value":
			if !amountRE.MatchString(s) {
				t.Errorf("%s: %s = %v is not a decimal string", e.Type, k, v)
			}
		case k == "currency":
			if s != "EUR" {
				t.Errorf("%s: currency %v", e.Type, v)
			}
		case k == "created_at" || k == "updated_at":
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				t.Errorf("%s: %s = %v: %v", e.Type, k, v, err)
			}
		}
	}
}

// validISIN checks the ISIN check digit (Luhn over the letters-as-numbers).
func validISIN(s string) bool {
	if !isinRE.MatchString(s) {
		return false
	}
	var digits strings.Builder
	for _, r := range s[:11] {
		if r >= 'A' && r <= 'Z' {
			digits.WriteString(strconv.Itoa(int(r-'A') + 10))
		} else {
			digits.WriteRune(r)
		}
	}
	d := digits.String()
	sum := 0
	for i := range len(d) {
		n := int(d[len(d)-1-i] - '0')
		if i%2 == 0 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return (10-sum%10)%10 == int(s[11]-'0')
}

func TestInstrumentsHaveValidISINs(t *testing.T) {
	for _, in := range instruments() {
		if !validISIN(in.isin) {
			t.Errorf("%s (%s): invalid ISIN", in.isin, in.name)
		}
	}
}

func TestOrderFlowCorrelates(t *testing.T) {
	g := NewGenerator(3)
	evs := g.OrderFlow()
	var types []string
	orderIDs := map[string]bool{}
	accounts := map[string]bool{}
	for _, e := range evs {
		checkEvent(t, e)
		types = append(types, e.Type)
		obj := e.Object.(map[string]any)
		accounts[obj["account_id"].(string)] = true
		switch e.Family() {
		case "ORDER":
			orderIDs[obj["id"].(string)] = true
		case "EXECUTION":
			orderIDs[obj["order_id"].(string)] = true
		}
	}
	for _, want := range []string{"ORDER.NEW", "ORDER.FILLED", "EXECUTION.FILLED", "POSITION.UPDATED", "CASH_BALANCE.UPDATED"} {
		if !slices.Contains(types, want) {
			t.Errorf("order flow %v lacks %s", types, want)
		}
	}
	if len(orderIDs) != 1 || len(accounts) != 1 {
		t.Errorf("order flow does not share ids: orders %v accounts %v", orderIDs, accounts)
	}
	on := g.Onboarding()
	if on[0].Type != "USER.CREATED" || on[len(on)-1].Type != "USER.ACTIVATED" {
		t.Errorf("onboarding %v", on)
	}
	for i := 1; i < len(on); i++ {
		if !on[i].CreatedAt.After(on[i-1].CreatedAt) {
			t.Errorf("onboarding times not increasing")
		}
	}
}

// TestOrderStatesInTimeOrder: an order's FILLED is never older than its
// NEW, on the wall clock (events made in a burst) as with a fixed clock.
func TestOrderStatesInTimeOrder(t *testing.T) {
	for _, g := range []*Generator{NewGenerator(5), NewGenerator(5, GenerateFrom(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))} {
		for range 500 {
			var placed, filled time.Time
			for _, e := range g.OrderFlow() {
				switch e.Type {
				case "ORDER.NEW":
					placed = e.CreatedAt
				case "ORDER.FILLED":
					filled = e.CreatedAt
				}
			}
			if !filled.After(placed) {
				t.Fatalf("ORDER.FILLED at %s, not after its ORDER.NEW at %s", filled, placed)
			}
		}
	}
}

func TestGenerateFamilies(t *testing.T) {
	g := NewGenerator(9, GenerateFamilies("CASH_BALANCE"))
	for range 50 {
		for _, e := range g.Next() {
			if e.Family() != "CASH_BALANCE" {
				t.Fatalf("restricted generator made %s", e.Type)
			}
		}
	}
	if n := len(g.Batch(7)); n != 7 {
		t.Errorf("Batch(7) gave %d", n)
	}
}

// TestGeneratorTracksWallClock: without GenerateFrom, created_at follows
// the clock and strictly increases, so a long demo run never drifts into
// the future.
func TestGeneratorTracksWallClock(t *testing.T) {
	g := NewGenerator(5)
	before := time.Now().UTC().Truncate(time.Microsecond)
	evs := g.Batch(2000)
	after := time.Now().UTC()
	for i, e := range evs {
		if i > 0 && !e.CreatedAt.After(evs[i-1].CreatedAt) {
			t.Fatalf("event %d created_at %v not after %v", i, e.CreatedAt, evs[i-1].CreatedAt)
		}
	}
	if first, last := evs[0].CreatedAt, evs[len(evs)-1].CreatedAt; first.Before(before) || last.After(after.Add(2*time.Millisecond)) {
		t.Errorf("created_at from %v to %v, generated between %v and %v", first, last, before, after)
	}

	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fixed := NewGenerator(5, GenerateFrom(start)).Event()
	if !fixed.CreatedAt.Equal(start) {
		t.Errorf("GenerateFrom: first created_at %v, want %v", fixed.CreatedAt, start)
	}
	if wall := NewGenerator(5).Event(); wall.ID != fixed.ID {
		t.Errorf("ids depend on GenerateFrom: %s vs %s", wall.ID, fixed.ID)
	}
}
