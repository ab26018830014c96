// Package client is the medicus messenger client: a Session logs a device in
// to its homeserver, keeps the device's keys and the MLS state of every room
// in an encrypted local state file (package client/state), and turns the
// homeserver's ordered log of opaque messages into end-to-end encrypted
// rooms.
//
// Every room is one MLS group (RFC 9420). Creating a room creates the group;
// inviting claims one KeyPackage per device of the invitee and sends a
// commit with Adds, whose Welcome goes to each new device as a direct device
// message; removing sends a commit with Removes. Commits go to the room's
// hub, which accepts exactly one per epoch: a client whose commit lost the
// race processes the winner and retries.
//
// Every leaf's credential binds the MLS signature key to a user and device
// under the user's identity key (package crypto/identity). The session
// verifies it for every member it sees, pins identity keys on first use,
// refuses a credential under another key than the pinned one (and records
// a warning), and computes safety numbers to compare out of band. The
// homeserver holds no identity key, so it cannot add a device to a group.
//
// Application messages carry the content format of package client/content.
package client
