extension Membership {
    /// The failure detector's periodic step: HEALTHY -> SUSPECT -> DEAD on missed heartbeats, and forgetting
    /// departed workers after the retention.
    ///
    /// The deaths of one tick bump each affected task's epoch once and are persisted in one change. If the previous
    /// tick is longer ago than ``MembershipConfig/stallThreshold``, the coordinator itself stalled: the time it lost
    /// is not counted as the members' silence.
    ///
    /// `arrivals` are the heartbeats that reached the coordinator since the last tick (worker, latest arrival moment,
    /// monotonic), recorded where they arrived and not yet seen by ``onHeartbeat(_:step:metrics:arrivedAt:now:)``
    /// because the engine was busy: they count as signs of life (``onSignOfLife(_:at:now:)``) before anyone is
    /// judged, after the stall rule moved every member's last sign of life forward (an arrival during the stall is
    /// newer still).
    ///
    /// `lag` is how far behind the coordinator's threads run (how late a job queued for them now starts): heartbeats
    /// that reached the coordinator in the last `lag` may still wait there unread. Both timeouts are extended by it,
    /// up to ``MembershipConfig/maxLagGrace`` (so a coordinator that stays overloaded still declares a dead worker
    /// dead, within twice the dead timeout).
    public mutating func onTick(now: Moment, arrivals: [WorkerID: Duration] = [:], lag: Duration = .zero)
        -> [Directive]
    {
        var directives: [Directive] = []
        let t = now.monotonic
        if let last = lastTick, t - last > config.stallThreshold {
            // Nobody could be heard while the coordinator was away: move every member's last sign of life forward by
            // the time the coordinator lost, so each is judged on its own silence only.
            let lost = t - last - config.tickInterval
            entries.updateEach { entry in
                if entry.isMember { entry.lastSeen = min(entry.lastSeen + lost, t) }
            }
            directives.append(.log(.coordinatorStalled(gap: t - last)))
        }
        lastTick = t
        // A sign of life changes its own worker's entry only, so the arrivals are taken in the dictionary's order
        // (sorting them all cost more instructions than the signs of life themselves); the few that make directives (a
        // suspect's recovery) are sorted by worker, so that a tick's directives do not depend on that order.
        var recovered: [(id: WorkerID, directives: [Directive])] = []
        for (id, moment) in arrivals {
            let signs = onSignOfLife(id, at: moment, now: now)
            if !signs.isEmpty { recovered.append((id, signs)) }
        }
        for sign in recovered.sorted(by: { $0.id < $1.id }) { directives += sign.directives }
        // The restart's grace is over: whoever is still unheard is judged (and dies) on its silence like anyone.
        if let restoredAt, t - restoredAt >= config.deadAfter {
            restoredUnheard = []
            self.restoredAt = nil
        }

        let grace = min(max(lag, .zero), config.maxLagGrace)
        let deadAfter = config.deadAfter + grace
        let suspectAfter = config.suspectAfter + grace
        var dying: [Entry] = []
        var suspected: [Entry] = []
        var expired: [WorkerID] = []
        var nextDeath: Duration?
        // The entries' fields are read in place, through a pointer to each: copying an entry (its record's strings
        // and maps) costs a retain and a release of each, for every worker on every tick, and reading a field through
        // the array's subscript (or a buffer's) made such a copy (seen in a profile and in the machine code).
        entries.values.withUnsafeBufferPointer { all in
            guard let first = all.baseAddress else { return }
            for entry in first..<first + all.count {
                guard case .member = entry.pointee.record.standing else {
                    if let departed = entry.pointee.departedAt, t - departed >= config.departedRetention {
                        expired.append(entry.pointee.record.spec.id)
                    }
                    continue
                }
                let lastSeen = entry.pointee.lastSeen
                let silence = t - lastSeen
                if silence >= deadAfter {
                    dying.append(entry.pointee)
                    continue
                }
                let due = lastSeen + deadAfter
                if nextDeath.map({ due < $0 }) ?? true { nextDeath = due }
                if silence >= suspectAfter, case .healthy = entry.pointee.health,
                    restoredUnheard.isEmpty || !restoredUnheard.contains(entry.pointee.record.spec.id)
                {
                    suspected.append(entry.pointee)
                }
            }
        }

        for entry in suspected.sorted(by: { $0.record.joinSeq < $1.record.joinSeq }) {
            let spec = entry.record.spec
            entries.update(spec.id) { $0.health = .suspect }
            directives.append(.log(.suspected(spec.id, spec.taskID, silentFor: t - entry.lastSeen)))
        }

        var change = MembershipChange()
        var deadByTask: [TaskID: [Entry]] = [:]
        for var entry in dying.sorted(by: { $0.record.joinSeq < $1.record.joinSeq }) {
            depart(&entry, as: .dead, now: now)
            entries[entry.record.spec.id] = entry
            change.upserted.append(entry.record)
            deadByTask[entry.record.spec.taskID, default: []].append(entry)
        }
        for (task, dead) in deadByTask.sorted(by: { $0.key < $1.key }) {
            let epoch = removeMembers(Set(dead.map(\.record.spec.id)), from: task)
            change.epochs[task] = epoch
            for entry in dead {
                directives.append(
                    .log(.declaredDead(entry.record.spec.id, task, silentFor: t - entry.lastSeen, epoch: epoch)))
            }
            directives.append(
                .membershipChanged(
                    task, members: members(of: task), epoch: epoch,
                    cause: .died(dead.map(\.record.spec.id), after: config.deadAfter)))
        }

        for id in expired.sorted() {
            entries[id] = nil
            change.forgotten.append(id)
            directives.append(.log(.forgotten(id)))
        }
        if !change.isEmpty { directives.insert(.persist(change), at: 0) }
        nextDeathDue = nextDeath
        return directives
    }
}
