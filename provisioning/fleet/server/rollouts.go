package server

import (
	"context"
	"errors"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

// evaluateQueue bounds the rollouts waiting for an evaluation out of
// turn. A burst of finished devices in one rollout needs one evaluation,
// not one each, and the periodic pass covers anything dropped.
const evaluateQueue = 16

// evaluateSoon asks for a rollout's evaluation without waiting: the
// device API calls it from a check-in.
func (s *Server) evaluateSoon(id string) {
	select {
	case s.evaluate <- id:
	default:
	}
}

// rollouts evaluates every running rollout at start and every
// RolloutInterval, and one rollout whenever a check-in finished a device
// in it, until ctx ends. Evaluation opens the next ring, halts on too many
// failures or completes the rollout (store.EvaluateRollout).
func (s *Server) rollouts(ctx context.Context) {
	t := time.NewTicker(s.opts.RolloutInterval)
	defer t.Stop()
	s.evaluateAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.evaluateAll(ctx)
		case id := <-s.evaluate:
			// Drain what queued meanwhile: each rollout once.
			ids := map[string]bool{id: true}
			for more := true; more; {
				select {
				case id := <-s.evaluate:
					ids[id] = true
				default:
					more = false
				}
			}
			for id := range ids {
				r, err := s.Store.Rollout(ctx, id)
				if err != nil {
					if ctx.Err() == nil {
						s.log.Warn("rollout evaluation", "rollout", id, "err", err)
					}
					continue
				}
				s.evaluateOne(ctx, r)
			}
		}
	}
}

// evaluateAll evaluates every running rollout.
func (s *Server) evaluateAll(ctx context.Context) {
	rs, err := s.Store.ActiveRollouts(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list rollouts to evaluate", "err", err)
		}
		return
	}
	for _, r := range rs {
		if ctx.Err() != nil {
			return
		}
		s.evaluateOne(ctx, r)
	}
}

// evaluateOne evaluates a running rollout and logs what changed. Without
// its release in the catalog it cannot tell who can take it, so it waits
// (and says so) rather than guess.
func (s *Server) evaluateOne(ctx context.Context, r store.Rollout) {
	if r.State != store.RolloutRunning {
		return
	}
	log := s.log.With("rollout", r.ID, "target", r.Target, "version", r.Version)
	if s.Releases == nil {
		log.Warn("rollout running but fleetd serves no update repository (-updates)")
		return
	}
	rel, err := rollout.Find(ctx, s.Releases, r.Target)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("rollout's release not found in the update repository", "err", err)
		}
		return
	}
	after, dec, err := s.Store.EvaluateRollout(ctx, r.ID, rel, s.opts.OfflineGrace)
	switch {
	case errors.Is(err, store.ErrConflict):
		// Changed meanwhile (paused, or evaluated by another fleetd):
		// the next pass sees the new state.
		log.Debug("rollout changed during evaluation", "err", err)
		return
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("rollout evaluation", "err", err)
		}
		return
	}
	switch dec.Action {
	case rollout.Advance:
		log.Info("rollout ring opened", "ring", after.Rings[after.Ring].Name, "reason", dec.Reason)
	case rollout.Halt:
		log.Warn("rollout halted", "reason", dec.Reason)
	case rollout.Complete:
		log.Info("rollout completed", "reason", dec.Reason)
	}
}
