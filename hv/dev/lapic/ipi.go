package lapic

// sendICR sends the IPI an ICR low write describes. Intel SDM Vol. 3A,
// 11.6.1 "Interrupt Command Register (ICR)".
func (a *LAPIC) sendICR(e *effects) {
	lo := a.icrLow
	m := Message{
		Vector:    uint8(lo & ICRVector),
		Mode:      DeliveryMode(lo & ICRDeliveryMode >> icrDeliveryShift),
		Logical:   lo&ICRLogical != 0,
		Shorthand: uint8(lo & ICRShorthandMask >> ICRShorthandShift),
		Assert:    lo&ICRLevelAssert != 0,
		Level:     lo&ICRLevelTrigger != 0,
		X2APIC:    a.x2apic(),
	}
	if a.x2apic() {
		m.Dest = a.icrHigh
	} else {
		m.Dest = a.icrHigh >> icrHighDestShift
	}
	switch m.Mode {
	case Fixed, LowestPriority:
		if m.Vector < minLegalVector {
			a.recordError(ESRSendIllegalVector, e)
			return
		}
	case 3, 7:
		return // reserved for IPIs
	case INIT:
		if !m.Assert && m.Level {
			// INIT level de-assert: only synchronizes arbitration IDs
			// on old processors. Intel SDM Vol. 3A, 11.6.1.
			return
		}
	}
	if m.Mode != INIT && m.Mode != StartUp {
		m.Assert = true
	}
	if m.Shorthand == Self {
		if m.Mode == Fixed {
			a.acceptFixed(m.Vector, m.Level, e)
		}
		return // other modes with the self shorthand are invalid
	}
	e.ipi, e.msg = true, m
}

// sendIPI routes a message with no lock held.
func (a *LAPIC) sendIPI(m Message) {
	if a.cfg.Router != nil {
		a.cfg.Router.Route(a, m)
	} else if m.Shorthand == AllIncluding || m.Shorthand == NoShorthand && a.Match(m) {
		a.Accept(m)
	}
}

// Match reports whether the LAPIC is addressed by m's destination
// (ignoring the shorthand). Intel SDM Vol. 3A, 11.6.2 "Determining IPI
// Destination" and 11.12.10 "Logical Destination Mode in x2APIC Mode".
func (a *LAPIC) Match(m Message) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hwEnabled() {
		return false
	}
	x2 := a.x2apic()
	bcast := uint32(XAPICBroadcast)
	if m.X2APIC {
		bcast = X2APICBroadcast
	}
	if m.Dest == bcast {
		return true
	}
	if !m.Logical {
		return m.Dest == a.id
	}
	if x2 {
		if !m.X2APIC {
			return false // xAPIC logical format cannot address an x2APIC's LDR
		}
		return m.Dest>>16 == a.ldr>>16 && m.Dest&a.ldr&0xFFFF != 0
	}
	d := m.Dest & 0xFF
	ld := a.ldr >> 24
	if a.dfr>>dfrModelShift == DFRModelFlat {
		return d&ld != 0
	}
	return d>>4 == ld>>4 && d&ld&0xF != 0
}

// Accept receives a message addressed to this LAPIC: fixed and
// lowest-priority interrupts go to IRR, INIT resets the LAPIC and is
// signalled, NMI, SIPI, SMI and ExtINT are signalled to the vCPU.
// Intel SDM Vol. 3A, 11.6.1 (delivery modes).
func (a *LAPIC) Accept(m Message) {
	var e effects
	a.mu.Lock()
	switch m.Mode {
	case Fixed, LowestPriority:
		a.acceptFixed(m.Vector, m.Level, &e)
	case NMI:
		e.sig = SignalNMI
	case SMI:
		e.sig = SignalSMI
	case ExtINT:
		e.sig = SignalExtINT
	case INIT:
		if m.Assert {
			a.reset()
			e.sig = SignalINIT
		}
	case StartUp:
		e.sig, e.sigVec = SignalSIPI, m.Vector
	}
	if e.sig != 0 {
		e.kick = true
	}
	a.mu.Unlock()
	a.run(&e)
}

// priority returns the arbitration priority for lowest-priority delivery.
func (a *LAPIC) priority() uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.apr()
}

// ID returns the current APIC ID (x2APIC ID, or xAPIC ID register bits
// 31:24).
func (a *LAPIC) ID() uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// A Group is the set of LAPICs of one VM and routes messages among them.
// Register every LAPIC with Add before the vCPUs run.
type Group struct {
	apics []*LAPIC
}

// Add puts a LAPIC in the group.
func (g *Group) Add(a *LAPIC) { g.apics = append(g.apics, a) }

// Route implements Router: it delivers m from src (nil for a message from
// an I/O APIC or MSI) to every LAPIC it addresses; a lowest-priority
// message goes to the one addressed LAPIC with the lowest arbitration
// priority (the lowest APIC ID among equals). It does not allocate.
func (g *Group) Route(src *LAPIC, m Message) {
	if m.Mode == LowestPriority && m.Shorthand == NoShorthand {
		var best *LAPIC
		var bestPri uint32
		for _, a := range g.apics {
			if !a.Match(m) {
				continue
			}
			p := a.priority()
			if best == nil || p < bestPri || p == bestPri && a.ID() < best.ID() {
				best, bestPri = a, p
			}
		}
		if best != nil {
			best.Accept(m)
		}
		return
	}
	for _, a := range g.apics {
		switch m.Shorthand {
		case Self:
			if a != src {
				continue
			}
		case AllButSelf:
			if a == src {
				continue
			}
		case AllIncluding:
		default:
			if !a.Match(m) {
				continue
			}
		}
		a.Accept(m)
	}
}
