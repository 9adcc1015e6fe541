package ratelimit

import "math"

// Apply decides one request against the cell at now (Unix microseconds),
// leaves in c the cell as it must be stored if the request's decision is
// committed, and writes the bucket's verdict into res. It works in place:
// the memory store makes no copy of the cell or the result per decision.
//
// The bucket is GCRA: a request is admitted when the theoretical arrival
// time, pushed one interval further, stays within capacity × interval of now.
// Everything is integer microseconds so that remaining is exact. The Redis
// script (redisstore) is a line-by-line copy, with strike and applyBanned
// written in place; change both together.
func (c *Cell) Apply(b *Bucket, r *Rules, now int64, res *Result) {
	*res = Result{Now: now}
	if c.Seen > now {
		c.rebase(now - c.Seen)
	}
	c.Seen = now
	if c.BannedUntil > now && !b.Shadow {
		c.applyBanned(b, r, now, res)
		return
	}

	// Strikes decay one per DecayMicros since the last one was given. The
	// decay is computed, never stored: c keeps the strikes and StrikeAt as
	// the last strike left them, so that StrikeAt stays the last 429, which
	// sustained success is counted from (written back, each decay step
	// moved it, and with a decay no longer than the window nothing was
	// ever forgiven).
	strikes := c.Strikes
	if strikes > 0 && r.DecayMicros > 0 {
		if k := (now - c.StrikeAt) / r.DecayMicros; k >= int64(strikes) {
			strikes = 0
		} else if k > 0 {
			strikes -= int(k)
		}
	}
	capacity := Penalized(b.Capacity, r.PenaltyFactor, strikes)

	// A changed interval keeps the tokens already spent: rescale the debt.
	iv := b.Interval
	tat := c.TAT
	if tat > now && c.Interval > 0 && c.Interval != iv {
		tat = now + int64(math.Ceil(float64(tat-now)*float64(iv)/float64(c.Interval)))
	}
	base := max(tat, now)
	next := base + iv
	limit := int64(capacity) * iv
	c.Interval = iv
	// The cell keeps the burst, before penalties: capacity is the burst
	// itself while there is no strike, and the paths with strikes store
	// b.Capacity below (here it would cost the common path a load).
	c.Capacity = capacity
	res.Capacity = capacity

	if next-now <= limit {
		res.Allowed = true
		res.Remaining = int((limit - (next - now)) / iv)
		res.ResetAfter = next - now
		c.TAT = next
		// Sustained success: a whole window without a 429 that found the
		// bucket full forgives every strike.
		if strikes > 0 {
			c.Capacity = b.Capacity
			if tat <= now && now-c.StrikeAt >= b.Window {
				strikes = 0
				// Answered under the capacity the next request is decided
				// with: the bucket was full, so all of it but this token.
				res.Capacity, res.Remaining = b.Capacity, b.Capacity-1
			}
		}
		if strikes == 0 {
			c.Strikes, c.StrikeAt = 0, 0
		}
		res.Strikes = strikes
		return
	}

	c.TAT = tat
	c.Capacity = b.Capacity
	res.ResetAfter = tat - now
	if b.Shadow || b.NoPenalty {
		// No strike: a shadow bucket only says it would have denied; a
		// NoPenalty one (the global scope's: a penalty would refuse every
		// client for one) denies, and the wait is for the next token at the
		// capacity as it is.
		res.RetryAfter = next - now - limit
		res.Allowed, res.Shadowed = b.Shadow, b.Shadow
		if strikes == 0 {
			c.Strikes, c.StrikeAt = 0, 0
		}
		res.Strikes = strikes
		return
	}

	c.strike(b, r, now, next-now, strikes, res)
}

// rebase moves c's times by d (< 0): the store's clock went back since c's
// last decision (an NTP step, a VM restored from a snapshot, a Cluster
// slot moved to a master whose clock is behind). The key keeps the state
// it had then; otherwise it owed the step as debt, and every key active
// before the step was refused, struck and banned until the clock caught
// up (a client that had spent 1 token of 10 was told to wait an hour). A
// function of its own so that it costs Apply's path one comparison.
func (c *Cell) rebase(d int64) {
	if c.TAT != 0 {
		c.TAT += d
	}
	if c.StrikeAt != 0 {
		c.StrikeAt += d
	}
	if c.BannedUntil != 0 {
		c.BannedUntil += d
	}
	if c.LastBan != 0 {
		c.LastBan += d
	}
}

// strike is the rest of Apply for a request the bucket denies (not a
// shadow one): the key's strikes, after decay, get one more (up to
// MaxStrikes), which bans it at Rules.BanAfter; wait is the time until the
// next token (next − now).
// It is a function of its own so that its work (a call of math.Floor in
// Penalized among it) costs Apply's other paths nothing, not even the
// registers saved around that call.
func (c *Cell) strike(b *Bucket, r *Rules, now, wait int64, strikes int, res *Result) {
	strikes = min(strikes+1, MaxStrikes)
	strikeAt := now
	if r.BanAfter > 0 && strikes >= r.BanAfter {
		// A repeat is a ban within the repeat window of the previous one's
		// end: from its start, the ban after a ban as long as the window
		// (an hour, the longest) was a first one again.
		level := 0
		if c.LastBan > 0 && now-c.BannedUntil < r.RepeatMicros {
			level = c.BanLevel + 1
		}
		d := r.BanMicros
		for i := 0; i < level && d < r.BanMaxMicros; i++ {
			d *= 2
		}
		d = min(d, r.BanMaxMicros)
		c.BannedUntil = now + d
		c.LastBan = now
		c.BanLevel = level
		strikes, strikeAt = 0, 0
		res.Banned = true
		res.NewBan = true
		res.BannedUntil = c.BannedUntil
		res.RetryAfter = c.banRetryAfter(b, now) // c.TAT is the debt Apply left
	} else {
		// The wait under the capacity this strike leaves, which the next
		// request is decided with: a client that waits this long is let in.
		res.RetryAfter = wait - int64(Penalized(b.Capacity, r.PenaltyFactor, strikes))*b.Interval
	}
	c.Strikes, c.StrikeAt = strikes, strikeAt
	res.Strikes = strikes
}

// applyBanned is Apply for a key banned at now (not a shadow bucket): the
// request is refused, nothing spent, no strike given. It is a function of
// its own so that its work (a call of math.Ceil among it) costs Apply's
// other paths nothing, not even the registers saved around that call.
func (c *Cell) applyBanned(b *Bucket, r *Rules, now int64, res *Result) {
	// The debt is rescaled to a changed interval as any decision rescales
	// it, and kept so, so that the wait below stays true.
	iv := b.Interval
	if c.TAT > now && c.Interval > 0 && c.Interval != iv {
		c.TAT = now + int64(math.Ceil(float64(c.TAT-now)*float64(iv)/float64(c.Interval)))
	}
	c.Interval, c.Capacity = iv, b.Capacity
	res.Banned = true
	res.BannedUntil = c.BannedUntil
	res.RetryAfter = c.banRetryAfter(b, now)
	res.Capacity = c.banCapacity(r)
	res.Strikes = c.Strikes
	res.ResetAfter = max(c.TAT-now, 0)
}

// banRetryAfter is the Retry-After of a request c's ban refuses at now, by
// the ban that just began (strike) or one running (applyBanned): the ban
// resets the strikes, so a request passes once the ban is over and the
// debt, c.TAT at b's interval, admits one at the bucket's full capacity.
func (c *Cell) banRetryAfter(b *Bucket, now int64) int64 {
	return max(c.BannedUntil, c.TAT+b.Interval-int64(b.Capacity)*b.Interval) - now
}

// banCapacity is the capacity a banned key answers with: the one it was
// banned at, which is its capacity before penalties (c.Capacity) under the
// strikes that precede the banning one. The ban resets the strikes, so they
// are not kept; with the same rules, a ban always comes at BanAfter.
func (c *Cell) banCapacity(r *Rules) int {
	return max(Penalized(c.Capacity, r.PenaltyFactor, max(r.BanAfter-1, 0)), 1)
}

// Penalized returns capacity × factor^strikes rounded down, at least 1. It
// multiplies step by step (no pow) so that Go and Lua agree bit for bit,
// and stops below 1 (a factor is at most 1, so the answer is 1 then).
func Penalized(capacity int, factor float64, strikes int) int {
	if strikes == 0 {
		return capacity
	}
	f := float64(capacity)
	for i := 0; i < strikes && f >= 1; i++ {
		f *= factor
	}
	return max(1, int(math.Floor(f)))
}
