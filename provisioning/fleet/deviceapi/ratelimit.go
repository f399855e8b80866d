package deviceapi

import (
	"sync"
	"time"
)

// RateLimit is a token bucket: up to Burst attempts at once, one more
// allowed every Every.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// Defaults for enrollment: a person mistyping a code a few times is never
// slowed, a script guessing from one address gets 2 tries a minute, and
// the whole fleet sees at most 600 failed attempts an hour however many
// addresses guess. Codes carry 96 bits, so these limits are defence in
// depth rather than the protection itself.
var (
	DefaultEnrollPerClient = RateLimit{Burst: 10, Every: 30 * time.Second}
	DefaultEnrollFailures  = RateLimit{Burst: 100, Every: 6 * time.Second}
)

// maxClients bounds the per-address buckets kept; beyond it, buckets that
// have refilled completely (they hold no information) are dropped, and if
// that is not enough the stalest ones.
const maxClients = 10000

// bucket is one token bucket, refilled lazily on each use.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) refill(l RateLimit, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+float64(el)/float64(l.Every))
	}
	b.last = now
}

// wait is how long until a token is there.
func (b *bucket) wait(l RateLimit) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.Every))
}

// limiter counts failed enrollment attempts per client address and
// overall. An attempt takes a token from both buckets before it runs, and a
// successful one gives them back, so concurrent guesses cannot overshoot
// and successful enrollments (a factory enrolling a batch from one address)
// are never limited.
type limiter struct {
	perClient, global RateLimit
	now               func() time.Time

	mu      sync.Mutex
	clients map[string]*bucket
	all     bucket
}

func newLimiter(perClient, global RateLimit, now func() time.Time) *limiter {
	return &limiter{perClient: perClient, global: global, now: now,
		clients: map[string]*bucket{}, all: bucket{tokens: float64(global.Burst), last: now()}}
}

// take reserves an attempt for client; when refused it says how long to
// wait.
func (l *limiter) take(client string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.clients[client]
	if c == nil {
		l.prune(now)
		c = &bucket{tokens: float64(l.perClient.Burst), last: now}
		l.clients[client] = c
	}
	c.refill(l.perClient, now)
	l.all.refill(l.global, now)
	if w := max(c.wait(l.perClient), l.all.wait(l.global)); w > 0 {
		return false, w
	}
	c.tokens--
	l.all.tokens--
	return true, 0
}

// refund gives back the attempt a success took.
func (l *limiter) refund(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.clients[client]; c != nil {
		c.tokens = min(float64(l.perClient.Burst), c.tokens+1)
	}
	l.all.tokens = min(float64(l.global.Burst), l.all.tokens+1)
}

// prune keeps the per-client map bounded. Called with mu held.
func (l *limiter) prune(now time.Time) {
	if len(l.clients) < maxClients {
		return
	}
	for k, b := range l.clients {
		b.refill(l.perClient, now)
		if b.tokens >= float64(l.perClient.Burst) {
			delete(l.clients, k)
		}
	}
	for len(l.clients) >= maxClients {
		var stalest string
		var at time.Time
		for k, b := range l.clients {
			if stalest == "" || b.last.Before(at) {
				stalest, at = k, b.last
			}
		}
		delete(l.clients, stalest)
	}
}
