namespace Sessionization.Domain;

/// <summary>Marks every type that is written to the journal or snapshot store; one serializer with stable manifests handles them all.</summary>
public interface IPersistedRecord;
