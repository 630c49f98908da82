pytest_plugins = ["pytester"]


def pytest_configure(config):
    # Child pytest runs in subprocesses: in-process runs restore sys.modules afterwards, which
    # drops numpy/matplotlib modules they imported and breaks later chart tests in this process.
    # (Set here, not in tox.ini's addopts: suites run from this rootdir do not load pytester.)
    config.option.runpytest = "subprocess"
