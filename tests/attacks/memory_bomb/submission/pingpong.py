def ping_pong(rounds):
    hog = []
    while True:
        hog.append(bytearray(64 * 1024 * 1024))


def ring(n, tokens):
    return ping_pong(0)
