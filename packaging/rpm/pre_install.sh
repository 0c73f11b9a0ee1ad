# tandem: the `tandem` system group gives read-only access to the control socket.
getent group tandem >/dev/null || groupadd -r tandem
exit 0
