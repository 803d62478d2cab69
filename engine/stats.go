package engine

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats is a snapshot of a pool, taken by its supervisor between two
// messages, so its figures are consistent with each other.
type Stats struct {
	Name        string // WithName
	MaxSize     int    // WithMaxSize
	MaxIdle     int    // WithMaxIdle, or MaxSize when idle connections are bounded only by it
	MinIdle     int    // WithMinIdle
	Open        int    // connections open: Idle + InUse + Checking + Closing
	Idle        int    // open and parked
	InUse       int    // open and leased, whole or in shares
	Shared      int    // of InUse, connections carrying shares (Pool.Share)
	InFlight    int    // shares out: operations in flight on shared connections
	OpsPerConn  int    // WithOpsPerConn: shares a connection carries at most
	MaxInFlight int    // WithMaxInFlight, or the larger of MaxSize and the soft limit × OpsPerConn by default
	Checking    int    // open and being validated or rebound
	Closing     int    // being closed: they count against MaxSize until their close returns
	Dialing     int    // dials in flight
	Waiters     int    // callers queued for a connection
	PoolClosed  bool   // Close has been called
	Counters
	Keys  map[string]KeyStats // by key name
	Conns []ConnStats         // by slot
}

// Counters count events since the pool was made.
type Counters struct {
	Leases           uint64        // connections handed out whole (Lease)
	Shares           uint64        // shares handed out (Share)
	Waits            uint64        // leases and shares not served at once
	WaitTime         time.Duration // total time leases and shares spent queued
	UseTime          time.Duration // total time connections spent leased, counted at release
	CreateTime       time.Duration // total time successful dials took
	MaxWait          time.Duration // longest time a lease or share spent queued
	Timeouts         uint64        // callers that gave up (context or wait timeout)
	Exhausted        uint64        // fail-fast refusals
	Dials            uint64        // dials started
	DialErrors       uint64        // dials that failed
	Validations      uint64        // validations started
	ValidationErrors uint64        // validations that failed (connection closed)
	Rebinds          uint64        // idle connections rebound to another key
	RebindErrors     uint64        // rebinds that failed (connection closed)
	Discards         uint64        // connections discarded by their holder
	Expiries         uint64        // connections closed at the end of their lifetime
	Dead             uint64        // idle connections found unusable when taken out (closed by the server, or see the Connector's Liveness)
	IdleClosed       uint64        // connections pruned as idle too long or above max size
	Closed           uint64        // connections whose close has returned, for any reason
}

// Plus returns the counters of two pools together, as of one pool made of
// both (a wrapper that runs two engine pools as one reports them so):
// every count is the sum, MaxWait the longer of the two.
func (c Counters) Plus(o Counters) Counters {
	return Counters{
		Leases: c.Leases + o.Leases, Shares: c.Shares + o.Shares, Waits: c.Waits + o.Waits,
		WaitTime: c.WaitTime + o.WaitTime, UseTime: c.UseTime + o.UseTime, CreateTime: c.CreateTime + o.CreateTime,
		MaxWait: max(c.MaxWait, o.MaxWait), Timeouts: c.Timeouts + o.Timeouts, Exhausted: c.Exhausted + o.Exhausted,
		Dials: c.Dials + o.Dials, DialErrors: c.DialErrors + o.DialErrors,
		Validations: c.Validations + o.Validations, ValidationErrors: c.ValidationErrors + o.ValidationErrors,
		Rebinds: c.Rebinds + o.Rebinds, RebindErrors: c.RebindErrors + o.RebindErrors,
		Discards: c.Discards + o.Discards, Expiries: c.Expiries + o.Expiries, Dead: c.Dead + o.Dead,
		IdleClosed: c.IdleClosed + o.IdleClosed, Closed: c.Closed + o.Closed,
	}
}

// Opened returns how many connections were opened: Dials - DialErrors. For
// a consistent snapshot Opened() == Closed + Open, plus dials in flight that
// succeeded but were not yet counted.
func (c Counters) Opened() uint64 { return c.Dials - c.DialErrors }

// KeyStats is the part of a snapshot that concerns one key.
type KeyStats struct {
	Open, Idle, InUse, Waiters int
}

// ConnStats is one row of the state table.
type ConnStats struct {
	Slot      int
	Key       string
	State     string // idle, leased, shared, checking or closing
	Age       time.Duration
	ExpiresIn time.Duration
	Uses      int // leases and shares it served
	Shares    int // shares out on it now
}

func (s *supervisor[C]) snapshot() Stats {
	now := time.Now()
	maxIdle := s.cfg.maxIdle
	if maxIdle < 0 {
		maxIdle = s.cfg.maxSize
	}
	st := Stats{
		Name:        s.cfg.name,
		MaxSize:     s.cfg.maxSize,
		MaxIdle:     maxIdle,
		MinIdle:     s.cfg.minIdle,
		Open:        s.conns.open,
		Idle:        s.conns.idle,
		InUse:       s.conns.inUse,
		Shared:      s.conns.shared,
		InFlight:    s.inFlight,
		OpsPerConn:  s.cfg.opsPerConn,
		MaxInFlight: s.shareCap,
		Checking:    s.conns.checking,
		Closing:     s.conns.closing,
		Dialing:     s.dialing,
		Waiters:     s.waiters.Len(),
		PoolClosed:  s.closed,
		Counters:    s.c,
		Keys:        make(map[string]KeyStats),
	}
	for _, e := range s.conns.slots {
		if e == nil {
			continue
		}
		ks := st.Keys[e.key.Name]
		ks.Open++
		switch e.state {
		case eIdle:
			ks.Idle++
		case eLeased:
			ks.InUse++
		}
		st.Keys[e.key.Name] = ks
		state := e.state.String()
		if e.sharing() {
			state = "shared"
		}
		st.Conns = append(st.Conns, ConnStats{
			Slot: e.slot, Key: e.key.Name, State: state,
			Age: now.Sub(e.created), ExpiresIn: e.expires.Sub(now), Uses: e.uses, Shares: e.shares,
		})
	}
	for el := s.waiters.Front(); el != nil; el = el.Next() {
		ks := st.Keys[el.Value.key.Name]
		ks.Waiters++
		st.Keys[el.Value.key.Name] = ks
	}
	return st
}

// String renders the snapshot as a summary line and a state table, one row a
// connection, like Python ldappool's:
//
//	open 2/10 (idle 1, in use 1, checking 0, closing 0), dialing 0, waiting 0
//	SLOT  STATE   KEY        AGE  EXPIRES IN  USES
//	0     leased  svc#9f2c…  12s  9m30s       41
func (st Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "open %d/%d (idle %d, in use %d, checking %d, closing %d), dialing %d, waiting %d",
		st.Open, st.MaxSize, st.Idle, st.InUse, st.Checking, st.Closing, st.Dialing, st.Waiters)
	if st.PoolClosed {
		b.WriteString(", closed")
	}
	if st.OpsPerConn > 1 {
		fmt.Fprintf(&b, ", shared %d carrying %d/%d operations", st.Shared, st.InFlight, st.MaxInFlight)
	}
	fmt.Fprintf(&b, "\nleases %d, shares %d (waited %d, max wait %v), timeouts %d, dials %d (failed %d), closed %d\n",
		st.Leases, st.Shares, st.Waits, st.MaxWait, st.Timeouts, st.Dials, st.DialErrors, st.Closed)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tSTATE\tKEY\tAGE\tEXPIRES IN\tUSES\tSHARES")
	conns := append([]ConnStats(nil), st.Conns...)
	sort.Slice(conns, func(i, j int) bool { return conns[i].Slot < conns[j].Slot })
	for _, c := range conns {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%v\t%d\t%d\n", c.Slot, c.State, c.Key,
			c.Age.Round(time.Second), c.ExpiresIn.Round(time.Second), c.Uses, c.Shares)
	}
	tw.Flush()
	return b.String()
}
