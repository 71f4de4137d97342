import builtins

builtins.__dict__["NotImplementedError"] = type("X", (Exception,), {})
