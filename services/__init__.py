"""The signalflow services, one package each, all started by `signalflow run`."""
