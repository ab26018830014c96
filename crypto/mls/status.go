package mls

// Active reports whether the own member is still in the group: false after
// a commit that removed it was processed (or after a ReInit), when the
// group can neither send nor receive.
func (g *Group) Active() bool { return g.usable() == nil }
