# tandem: on erase (not upgrade, where $1 is 1) stop and disable the service, since its
# binary is about to go away. An upgrade never stops the running daemon.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now tandem.service >/dev/null 2>&1 || :
fi
exit 0
