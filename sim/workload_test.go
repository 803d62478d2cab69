package sim_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func TestPoissonRate(t *testing.T) {
	const rate, d = 100.0, 60 * time.Second
	got := sim.PoissonArrivals(rate, d, 42)
	want := rate * d.Seconds()
	if n := float64(len(got)); n < want*0.95 || n > want*1.05 {
		t.Fatalf("%d arrivals at %g/s over %v; want %g ± 5%%", len(got), rate, d, want)
	}
	if !slices.IsSorted(got) || got[0] < 0 || got[len(got)-1] >= d {
		t.Fatalf("schedule not sorted within [0, %v): first %v, last %v", d, got[0], got[len(got)-1])
	}
}

func TestPoissonRateAcrossSeeds(t *testing.T) {
	for seed := range uint64(20) {
		n := len(sim.PoissonArrivals(100, 60*time.Second, seed))
		if n < 5700 || n > 6300 {
			t.Errorf("seed %d: %d arrivals; want 6000 ± 5%%", seed, n)
		}
	}
}

func TestPoissonGapsAreExponential(t *testing.T) {
	// The gaps of a Poisson process are exponential: mean 1/rate, and
	// about e^-1 of them longer than the mean.
	const rate = 1000.0
	at := sim.PoissonArrivals(rate, 100*time.Second, 7)
	var sum time.Duration
	longer := 0
	mean := time.Duration(float64(time.Second) / rate)
	for i := 1; i < len(at); i++ {
		gap := at[i] - at[i-1]
		sum += gap
		if gap > mean {
			longer++
		}
	}
	gotMean := sum / time.Duration(len(at)-1)
	if gotMean < mean*95/100 || gotMean > mean*105/100 {
		t.Errorf("mean gap %v; want %v ± 5%%", gotMean, mean)
	}
	if frac := float64(longer) / float64(len(at)-1); frac < 0.35 || frac > 0.39 {
		t.Errorf("%.3f of gaps exceed the mean; want about e^-1 = 0.368", frac)
	}
}

func TestScheduleReproducibleBySeed(t *testing.T) {
	w := sim.Workload{Kind: sim.Poisson, Rate: 100, Clients: 4}
	a, b := w.Arrivals(10*time.Second, 1), w.Arrivals(10*time.Second, 1)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two different schedules")
	}
	if c := w.Arrivals(10*time.Second, 2); slices.Equal(a, c) {
		t.Fatal("seeds 1 and 2 gave the same schedule")
	}
}

func TestBurstArrivals(t *testing.T) {
	got := sim.BurstArrivals(3, time.Second, 2500*time.Millisecond)
	want := []time.Duration{0, 0, 0, time.Second, time.Second, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("bursts of 3 every 1s for 2.5s = %v; want %v", got, want)
	}
	w := sim.Workload{Kind: sim.Burst, BurstSize: 3, BurstEvery: time.Second, Clients: 1}
	if !slices.Equal(w.Arrivals(2500*time.Millisecond, 9), want) {
		t.Fatal("Workload.Arrivals of a burst workload differs from BurstArrivals")
	}
}

func TestClosedWorkloadHasNoSchedule(t *testing.T) {
	w := sim.Workload{Kind: sim.Closed, Clients: 4}
	if a := w.Arrivals(time.Second, 1); a != nil {
		t.Fatalf("closed workload schedule = %v; want nil", a)
	}
}

func TestWorkloadValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    sim.Workload
		want string // "" for valid
	}{
		{"closed", sim.Workload{Kind: sim.Closed, Clients: 16}, ""},
		{"closed without clients", sim.Workload{Kind: sim.Closed}, "0 clients"},
		{"negative think", sim.Workload{Kind: sim.Closed, Clients: 1, Think: -1}, "think time"},
		{"poisson", sim.Workload{Kind: sim.Poisson, Clients: 1, Rate: 5}, ""},
		{"poisson without rate", sim.Workload{Kind: sim.Poisson, Clients: 1}, "rate 0"},
		{"burst", sim.Workload{Kind: sim.Burst, Clients: 1, BurstSize: 2, BurstEvery: time.Second}, ""},
		{"burst without period", sim.Workload{Kind: sim.Burst, Clients: 1, BurstSize: 2}, "burst every"},
		{"multiprocess", sim.Workload{Kind: sim.MultiProcess, Processes: 2, Threads: 1}, ""},
		{"multiprocess without threads", sim.Workload{Kind: sim.MultiProcess, Processes: 2}, "0 threads"},
		{"unknown", sim.Workload{Kind: "zipf"}, `workload "zipf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v; want an error mentioning %q", err, tc.want)
			}
		})
	}
}
