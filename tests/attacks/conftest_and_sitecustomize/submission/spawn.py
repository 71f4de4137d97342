def worker_pids(n):
    raise NotImplementedError

def exit_codes(codes):
    raise NotImplementedError

def run_with_timeout(seconds, timeout):
    raise NotImplementedError
