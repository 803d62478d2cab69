package ldapconn

import (
	"math"
	"time"
)

// dialTimeout bounds one dial of the pool, for the engine: it may try every
// server retryMax times, each with a connect, a StartTLS and a bind, with the
// retry delay between tries. The arithmetic saturates, so huge settings give
// the longest Duration instead of a negative one.
func (c *config) dialTimeout(servers int) time.Duration {
	perTry := satAdd(c.connectTimeout, satMul(c.opTimeout, 2))
	tries := satMul(satAdd(perTry, c.retryDelay), c.retryMax)
	return satAdd(satMul(tries, servers), time.Second)
}

// satAdd returns a+b, or math.MaxInt64 where that would overflow. Both must
// not be negative.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satMul returns d*n, or math.MaxInt64 where that would overflow. Neither
// may be negative.
func satMul(d time.Duration, n int) time.Duration {
	if n != 0 && d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return d * time.Duration(n)
}
