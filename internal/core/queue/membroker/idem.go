package membroker

import (
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// idemRecords are one queue's idempotency keys: each key's job and the
// fingerprint of the request that made it, until it expires.
type idemRecords struct {
	m map[string]idemRecord
	// swept is the number of records after the last sweep of the expired
	// ones: the next comes when there are twice as many, so sweeping costs
	// O(1) per record made, amortized, and expired keys never pile up.
	swept int
}

type idemRecord struct {
	id, fingerprint string
	expires         time.Time
}

// get returns the record of key, unless it has expired at now.
func (r *idemRecords) get(key string, now time.Time) (idemRecord, bool) {
	rec, ok := r.m[key]
	if !ok || !now.Before(rec.expires) {
		return idemRecord{}, false
	}
	return rec, true
}

// record keeps key for job id until now + its TTL.
func (r *idemRecords) record(k *queue.Idempotency, id string, now time.Time) {
	if r.m == nil {
		r.m = map[string]idemRecord{}
	}
	if len(r.m) >= 2*r.swept {
		for key, rec := range r.m {
			if !now.Before(rec.expires) {
				delete(r.m, key)
			}
		}
		r.swept = max(len(r.m), 16)
	}
	r.m[k.Key] = idemRecord{id: id, fingerprint: k.Fingerprint, expires: now.Add(k.TTL)}
}

// checkKeys checks the idempotency keys of jobs at now, under b.mu, and
// returns for each job the id of the job its key made when it is a replay
// ("" otherwise; nil when no job is), or the refusal of the first key recorded for another
// request or for a job no longer kept.
func (b *Broker) checkKeys(jobs []queue.NewJob, now time.Time) ([]string, error) {
	var replays []string
	for i, nj := range jobs {
		if nj.Idem == nil {
			continue
		}
		q, ok := b.queues[nj.Queue]
		if !ok {
			continue
		}
		rec, ok := q.idem.get(nj.Idem.Key, now)
		if !ok {
			continue
		}
		if rec.fingerprint != nj.Idem.Fingerprint {
			return nil, queue.KeyReusedError(nj.Idem.Key, rec.id)
		}
		if _, kept := b.jobs[rec.id]; !kept {
			return nil, queue.KeyGoneError(nj.Idem.Key, rec.id)
		}
		if replays == nil {
			replays = make([]string, len(jobs))
		}
		replays[i] = rec.id
	}
	return replays, nil
}
