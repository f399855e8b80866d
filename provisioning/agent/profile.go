package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// applyProfile applies the server's effective profile when its version is
// new: validate, keep the one in effect as previous, apply, and start the
// settle period, which Run watches between check-ins (watchSettling): a
// profile whose verdict is pending never holds up check-ins, events or
// commands. A newer version waits for the verdict on the one settling.
//
// The order on disk makes every crash recoverable: profile.prev.json is
// written first, then profile-state.json names the version as settling,
// then profile.json, then roomd applies it. A start that finds a settling
// version rolls back to profile.prev.json.
func (a *Agent) applyProfile(ctx context.Context, ep fleetapi.EffectiveProfile) {
	if ep.Version == "" {
		return
	}
	a.mu.Lock()
	st := a.prof
	a.mu.Unlock()
	if ep.Version == st.Applied || ep.Version == st.Settling || slices.Contains(st.Refused, ep.Version) {
		return
	}
	if st.Settling != "" {
		return // one profile at a time: this one comes after the verdict
	}
	p, err := fleetapi.DecodeProfile(ep.Body)
	if err != nil {
		a.refuse(st, ep.Version, fleetapi.ProfileRejected, err.Error())
		return
	}
	cur, err := a.loadProfile(profileFile)
	if err != nil {
		// Rolling back to no fleet settings is the best left.
		a.log.Error("fleet agent: profile in effect unreadable; the previous profile will be empty", "err", err)
	}
	if err := a.saveProfile(profilePrevFile, cur); err != nil {
		a.log.Error("fleet agent: cannot keep the previous profile; not applying", "version", ep.Version, "err", err)
		return
	}
	st.Settling = ep.Version
	st.SettleUntil = a.clock.Now().Add(a.opts.SettlePeriod)
	if err := a.saveProfileState(st); err != nil {
		a.log.Error("fleet agent: cannot store profile state; not applying", "version", ep.Version, "err", err)
		return
	}
	if err := a.saveProfile(profileFile, storedProfile{Version: ep.Version, Body: ep.Body}); err != nil {
		a.log.Error("fleet agent: cannot store the profile; not applying", "version", ep.Version, "err", err)
		st.Settling, st.SettleUntil = "", time.Time{}
		_ = a.saveProfileState(st)
		return
	}
	a.log.Info("fleet agent: applying profile", "version", ep.Version)
	if err := a.applyToDevice(ctx, p); err != nil {
		// ApplyProfile changed nothing: put the files back as they were.
		if serr := a.saveProfile(profileFile, cur); serr != nil {
			a.log.Error("fleet agent: cannot restore the profile in effect", "err", serr)
		}
		st.Settling, st.SettleUntil = "", time.Time{}
		a.refuse(st, ep.Version, fleetapi.ProfileRejected, "roomd refused it: "+err.Error())
		return
	}
	a.setProfileState(st)
	a.log.Info("fleet agent: profile given to roomd; watching its health", "version", ep.Version, "until", st.SettleUntil)
}

// watchSettling judges the profile that is settling, if any: rolled back
// at the first unhealthy answer, applied once its settle period passed
// with roomd healthy. It reports whether a verdict was reached.
func (a *Agent) watchSettling(ctx context.Context) bool {
	a.mu.Lock()
	st := a.prof
	a.mu.Unlock()
	if st.Settling == "" {
		return false
	}
	if err := a.healthy(ctx); err != nil {
		if ctx.Err() != nil {
			return false // settling stays recorded: the next start rolls back
		}
		a.rollback(ctx, st, st.Settling, "roomd became unhealthy: "+err.Error())
		return true
	}
	if a.clock.Now().Before(st.SettleUntil) {
		return false
	}
	version := st.Settling
	st.Applied, st.Settling, st.SettleUntil = version, "", time.Time{}
	st.Last = fleetapi.ProfileOutcome{Version: version, Status: fleetapi.ProfileApplied}
	a.setProfileState(st)
	a.log.Info("fleet agent: profile applied", "version", version)
	a.queueEvent("profile."+fleetapi.ProfileApplied, "profile "+version+" applied", st.Last)
	return true
}

// isSettling says whether a profile is settling.
func (a *Agent) isSettling() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.prof.Settling != ""
}

// applyToDevice calls Device.ApplyProfile; a panic is a refusal.
func (a *Agent) applyToDevice(ctx context.Context, p fleetapi.Profile) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("crashed: %v", r)
		}
	}()
	return a.opts.Device.ApplyProfile(ctx, p)
}

func (a *Agent) healthy(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("health check crashed: %v", r)
		}
	}()
	return a.opts.Device.Healthy(ctx)
}

// rollback applies profile.prev.json again after version failed.
func (a *Agent) rollback(ctx context.Context, st profileState, version, reason string) {
	prev, err := a.loadProfile(profilePrevFile)
	if err != nil {
		a.log.Error("fleet agent: previous profile unreadable; rolling back to none", "err", err)
	}
	p, err := fleetapi.DecodeProfile(prev.Body)
	if err != nil {
		a.log.Error("fleet agent: previous profile invalid; rolling back to none", "err", err)
		p = fleetapi.Profile{}
	}
	if err := a.applyToDevice(ctx, p); err != nil {
		reason += "; restoring the previous profile failed too: " + err.Error()
	}
	if err := a.saveProfile(profileFile, prev); err != nil {
		a.log.Error("fleet agent: cannot store the restored profile", "err", err)
	}
	st.Applied = prev.Version
	st.Settling, st.SettleUntil = "", time.Time{}
	a.refuse(st, version, fleetapi.ProfileRolledBack, reason)
}

// refuse records a rejected or rolled-back version, never to be tried
// again, and reports it.
func (a *Agent) refuse(st profileState, version, status, reason string) {
	st.Last = fleetapi.ProfileOutcome{Version: version, Status: status, Reason: reason}
	if !slices.Contains(st.Refused, version) {
		st.Refused = append(st.Refused, version)
	}
	a.setProfileState(st)
	a.log.Warn("fleet agent: profile "+status, "version", version, "reason", reason)
	a.queueEvent("profile."+status, "profile "+version+" "+status+": "+reason, st.Last)
}

func (a *Agent) setProfileState(st profileState) {
	if err := a.saveProfileState(st); err != nil {
		a.log.Error("fleet agent: cannot store profile state", "err", err)
	}
	a.mu.Lock()
	a.prof = st
	a.mu.Unlock()
}

// recover finishes what a previous run left half done: commands started
// without a result, a profile that was settling, an acknowledged factory
// reset not carried out.
func (a *Agent) recover(ctx context.Context) {
	for _, e := range a.journal.all() {
		if e.State == cmdStarted {
			a.log.Warn("fleet agent: command was interrupted by a restart", "command", e.ID, "kind", e.Kind)
			a.finishInterrupted(e)
		}
	}
	a.mu.Lock()
	st := a.prof
	a.mu.Unlock()
	if st.Settling != "" {
		a.rollback(ctx, st, st.Settling, "roomd restarted while the profile was settling")
	}
	if a.identity() != nil && a.opts.Wiper != nil {
		a.wipeIfAcked(ctx)
	}
}
