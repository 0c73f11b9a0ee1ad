//! Gratuitous ARP / unsolicited neighbour advertisement (placeholder).
