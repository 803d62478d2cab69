package sim_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func TestParseFaults(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in   string
		want []sim.Fault
		err  string
	}{
		{in: "", want: nil},
		{in: "down:5s-8s,slow:10s-12s,drop:9s", want: []sim.Fault{
			{Kind: sim.Down, From: 5 * s, To: 8 * s},
			{Kind: sim.Slow, From: 10 * s, To: 12 * s},
			{Kind: sim.Drop, From: 9 * s},
		}},
		{in: " slow:1s-2s:x3 ", want: []sim.Fault{{Kind: sim.Slow, From: s, To: 2 * s, Factor: 3}}},
		{in: "slow:1s-2s:2.5", want: []sim.Fault{{Kind: sim.Slow, From: s, To: 2 * s, Factor: 2.5}}},
		{in: "down:8s-5s", err: "want 0 <= start < end"},
		{in: "down:5s", err: "want down:START-END"},
		{in: "down:1s-2s:x3", err: "only slow takes a factor"},
		{in: "slow:1s-2s:x0", err: "positive factor"},
		{in: "drop:soon", err: "want drop:TIME"},
		{in: "crash:1s", err: "kind crash"},
		{in: "down", err: "want kind:time"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := sim.ParseFaults(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseFaults(%q) = %v, %v; want an error mentioning %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseFaults(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			for _, f := range got {
				if again, err := sim.ParseFaults(f.String()); err != nil || len(again) != 1 || again[0] != f {
					t.Errorf("%v does not survive String and ParseFaults: %v, %v", f, again, err)
				}
			}
		})
	}
}
